"""vla_node: the frozen VLA + the RL-token encoder (a thin adapter over core.vla and core.rlt).

For every observation on /rlt/observation it runs the VLA backend (prefix embeddings z_1..z_M and
the reference chunk ã), encodes z_rl with the RL-token encoder and publishes rlt_ros/RLToken on
/rlt/token, stamped with the observation's time and tagged with the current episode and phase
(from /rlt/events). Observations that queued up while the VLA was busy are skipped (newest only).
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from rlt_ros.core.episode import PhaseTracker
from rlt_ros.core.interfaces import TokenPacket
from rlt_ros.core.types import Observation as CoreObservation
from rlt_ros.msg import EpisodeEvent, Observation, RLToken
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import MessageError, event_from_msg, image_from_msg, to_seconds, token_to_msg
from rlt_ros.ros.node_base import RltNode, run
from rlt_ros.core.arm import ArmConfig


@dataclass
class VLANodeConfig:
    backend: str = "builtin"  # VLA backend: builtin | smolvla | pi0 | pi05
    checkpoint: str = ""  # VLA checkpoint directory ('' = the built-in base policy shipped with rlt_ros)
    tokenizer_path: str = ""  # pi0/pi05: local folder with the PaliGemma tokenizer ('' = the one the checkpoint names)
    vlm_path: str = ""  # smolvla: local folder with the VLM's config + tokenizer ('' = the checkpoint's vlm_model_name)
    dtype: str = "auto"  # LeRobot VLAs' weights: auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16
    token_checkpoint: str = ""  # RL-token encoder directory ('' = the one shipped for the built-in VLA)
    instruction: str = "insert the peg into the socket"  # language instruction given to the VLA
    device: str = "cpu"  # torch device of the VLA and the encoder (cpu, cuda, cuda:1, ...)
    max_observation_age_s: float = 0.3  # observations older than this when processed are skipped [s]
    num_threads: int = 1  # torch CPU threads (0 = torch's default, every core; a GPU backend barely uses the CPU)

    def __post_init__(self):
        if self.max_observation_age_s <= 0:
            raise ValueError("vla.max_observation_age_s must be > 0")
        if self.num_threads < 0:
            raise ValueError("vla.num_threads must be >= 0 (0 = torch's default)")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"vla.dtype {self.dtype!r}: valid choices are auto, float32, bfloat16")
        if self.backend == "builtin" and (self.tokenizer_path or self.vlm_path):
            raise ValueError("vla.tokenizer_path / vla.vlm_path are for the LeRobot backends (pi0, pi05, smolvla)")

    def backend_kwargs(self) -> dict:
        """Keyword arguments of load_backend beyond kind and path."""
        kwargs: dict = {"device": self.device, "num_threads": self.num_threads or None}
        if self.backend != "builtin":
            kwargs["dtype"] = self.dtype
            kwargs.update({k: v for k, v in (("tokenizer_path", self.tokenizer_path), ("vlm_path", self.vlm_path)) if v})
        return kwargs


class VLANode(RltNode):
    CONFIGS = {"arm": ArmConfig, "vla": VLANodeConfig}  # prefix -> configuration

    def __init__(self):
        super().__init__("vla")
        from rlt_ros.core.checkpoints import check_token_matches_vla, load_token_encoder
        from rlt_ros.core.vla import load_backend

        cfg, arm = self.vla_config, self.arm_config
        # every check before anything moves: the VLA loads, fits the arm, and the RL token was trained on it
        self.backend = load_backend(cfg.backend, cfg.checkpoint or None, **cfg.backend_kwargs())
        self.backend.check_compatible(arm.joint_names, len(arm.joint_names), camera_names=arm.camera_names)
        self.encoder = load_token_encoder(cfg.token_checkpoint or None, expect_embed_dim=self.backend.embed_dim,
                                          device=cfg.device)
        check_token_matches_vla(cfg.token_checkpoint or None, cfg.checkpoint or None)
        self.phase = PhaseTracker()
        self.skipped = self.rejected = self.published = 0
        self.latency: deque[float] = deque(maxlen=500)
        self.pub = self.create_publisher(RLToken, "/rlt/token", qos.STREAM)
        self.create_subscription(EpisodeEvent, "/rlt/events", self._on_event, qos.EVENTS)
        # depth 1: a slow VLA always works on the newest observation
        self.create_subscription(Observation, "/rlt/observation", self._on_observation, 1)
        self.get_logger().info(f"VLA {self.backend.describe()}; RL token dim {self.encoder.token_dim}")

    def _on_event(self, msg):
        try:
            self.phase.apply(event_from_msg(msg))
        except MessageError as err:
            self.get_logger().warning(f"rejected event: {err}")

    def _on_observation(self, msg: Observation):
        stamp = to_seconds(msg.header.stamp)
        if self.now() - stamp > self.vla_config.max_observation_age_s:
            self.skipped += 1
            return
        try:
            obs = self._to_core(msg, stamp)
            t0 = time.perf_counter()
            out = self.backend.infer(vla_view(obs, self.backend.proprio_dim))
            token = self.encoder.encode(out.prefix_embeddings, out.prefix_mask)
            self.latency.append(time.perf_counter() - t0)
        except (MessageError, ValueError) as err:
            self.rejected += 1
            self.get_logger().warning(f"rejected observation: {err}", throttle_duration_sec=2.0)
            return
        packet = TokenPacket(stamp=stamp, episode_id=self.phase.episode_id, phase=self.phase.phase, token=token,
                             proprio=obs.proprio, joint_names=tuple(self.arm_config.joint_names),
                             reference_chunk=np.asarray(out.reference_chunk, np.float32), step_dt=self.arm_config.dt)
        self.pub.publish(token_to_msg(packet))
        self.published += 1
        if self.published % 500 == 0:
            lat = np.array(self.latency) * 1e3
            self.get_logger().info(f"{self.published} tokens, VLA+token latency p50 {np.median(lat):.1f} ms "
                                   f"p99 {np.percentile(lat, 99):.1f} ms, skipped {self.skipped}, rejected {self.rejected}")

    def _to_core(self, msg: Observation, stamp: float) -> CoreObservation:
        if list(msg.camera_names) != list(self.arm_config.camera_names) or len(msg.images) != len(msg.camera_names):
            raise MessageError(f"camera_names: expected {list(self.arm_config.camera_names)}, "
                               f"got {list(msg.camera_names)} with {len(msg.images)} images")
        images = {name: image_from_msg(img, name) for name, img in zip(msg.camera_names, msg.images)}
        return CoreObservation(images=images, proprio=np.asarray(msg.proprio, np.float32),
                               instruction=self.vla_config.instruction, stamp=stamp)


def vla_view(obs: CoreObservation, proprio_dim: int | None) -> CoreObservation:
    """The observation as the VLA reads it: the leading ``proprio_dim`` values of proprio (joint
    positions, velocities); the extras after them (e.g. the end-effector pose) are for the actor only."""
    if proprio_dim is None or len(obs.proprio) <= proprio_dim:
        return obs
    return dataclasses.replace(obs, proprio=obs.proprio[:proprio_dim])


def main(args=None):
    run(VLANode, args)


if __name__ == "__main__":
    main()
