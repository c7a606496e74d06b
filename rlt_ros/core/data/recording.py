"""Record scripted-expert demonstrations on the simulated arm into a ROS 2 (MCAP) bag."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlt_ros.core.data.bag_io import DemoBagWriter


@dataclass
class RecordingSummary:
    bag_dir: Path
    episodes: int
    successes: int
    steps: int
    median_critical_phase_s: float | None
    bytes: int


def record_expert_demos(out_dir: str | Path, episodes: int, sim_config=None, expert_config=None, seed: int = 0,
                        image_every: int = 1, overwrite: bool = False, progress: bool = True,
                        keep_failures: bool = True) -> RecordingSummary:
    """Run ``episodes`` scripted-expert episodes (seeds ``seed``, ``seed + 1``, ...) and write them
    into the bag folder ``out_dir``. Cameras are rendered every ``image_every`` control steps.

    keep_failures: also keep failed episodes (marked "failure"); when False they are not written.
    """
    from rlt_ros.core.sim.configuration_expert import ExpertConfig
    from rlt_ros.core.sim.configuration_sim import SimConfig
    from rlt_ros.core.sim.env import PegInsertionEnv
    from rlt_ros.core.sim.expert import ScriptedExpert

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if image_every < 1:
        raise ValueError(f"image_every must be >= 1, got {image_every}")
    env = PegInsertionEnv(sim_config or SimConfig())
    expert = ScriptedExpert(env, expert_config or ExpertConfig())
    dt = env.control_dt
    base_ns = int(time.time() * 1e9)
    offset_ns = 0
    successes, steps, crit = 0, 0, []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=episodes, desc="recording demos", unit="ep")
    with DemoBagWriter(out_dir, env.joint_names, env.camera_names, overwrite=overwrite) as writer:
        for ep in range(episodes):
            ep_seed = seed + ep
            obs, info = env.reset(seed=ep_seed)
            expert.reset(obs, seed=ep_seed + 7919)
            buffer = []  # (stamp_ns, obs, action) of this episode; written once its outcome is known
            crit_t = None
            k, done = 0, False
            while not done:
                action = expert.act(obs)
                buffer.append((obs, action))
                obs, _reward, terminated, truncated, info = env.step(action, render=((k + 1) % image_every == 0))
                if crit_t is None and info["in_critical_phase"]:
                    crit_t = info["critical_phase_started_at"]
                k += 1
                done = terminated or truncated
            if info["success"] or keep_failures:
                stamp = lambda t: base_ns + offset_ns + int(round(t * 1e9))  # noqa: E731
                sock = env.socket_pose
                writer.write_event({"event": "episode_start", "episode": ep, "seed": ep_seed,
                                    "instruction": env.instruction,
                                    "socket_xy_yaw": [float(sock.position[0]), float(sock.position[1]), float(sock.yaw)],
                                    "sim_config": env.config.to_dict()}, stamp(0.0))
                for o, a in buffer:
                    if crit_t is not None and abs(o["stamp"] - crit_t) < dt / 2:
                        writer.write_event({"event": "critical_phase_start", "episode": ep}, stamp(o["stamp"]))
                    writer.write_step(o, a, stamp(o["stamp"]), dt)
                end = {"event": "success" if info["success"] else "failure", "episode": ep, "steps": k,
                       "critical_phase_started_at": crit_t}
                writer.write_event(end, stamp(info["time"]))
                offset_ns += int(round((info["time"] + 1.0) * 1e9))  # 1 s gap between episodes
            successes += int(info["success"])
            steps += k
            if info["success"] and crit_t is not None:
                crit.append(info["time"] - crit_t)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(success=f"{successes}/{ep + 1}")
    if bar is not None:
        bar.close()
    env.close()
    size = sum(p.stat().st_size for p in Path(out_dir).iterdir() if p.is_file())
    return RecordingSummary(Path(out_dir), episodes, successes, steps,
                            float(np.median(crit)) if crit else None, size)
