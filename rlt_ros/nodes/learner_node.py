"""learner_node: the critic-learner (a thin adapter over core.rlt.learner).

Receives critical-phase transitions on /rlt/transitions into a replay buffer that is written to disk
as it grows (a crash loses no transition; a restart resumes from the last checkpoint plus the whole
buffer), trains the twin critics and the actor in a background thread (UTD ratio, 2 critic updates per
actor update), publishes actor weights on /rlt/actor_weights (latched: a restarted actor gets the
newest), checkpoints, and publishes training metrics on /rlt/learner_stats (with ``utd_achieved`` and
``pending_updates``: a learner slower than the data says so in its log; ``nonfinite_batches`` and
``skipped_steps``: optimiser steps skipped for NaN/inf, also logged; ``rollbacks``: divergent states rolled
back, never exported). Episode outcomes come from /rlt/events, and so do the terminal rewards stored: an
episode's end rows wait for its close and are labelled by its one outcome event (core.rlt.outcomes).
Every transition it is done with (stored and flushed, already held, or refused for good) is acknowledged on
/rlt/transitions_ack, so actor_node's outbox (core.rlt.outbox) sends again only what this node never got:
a kill at any moment, or the start-up, loses none and a resend duplicates none (the replay drops repeats).
``learner.device`` (auto|cpu|cuda[:N]) chooses where it trains; a missing GPU is an error at start-up.
With ``learner.marks_every`` it also records /rlt/token and /rlt/events into <output_dir>/marks and retrains
the handover switch and the success detector from the operator's presses after every that many marked
episodes (core.rlt.marks_training, in a worker thread), exports each new version on /rlt/switch_weights and
/rlt/detector_weights (which reward_node follows with episode.switch / reward.detector_path "learner"), and
adds their held-out metrics to /rlt/learner_stats (switch_on_time, detector_accuracy, ...).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from rlt_ros.core.episode import EpisodeConfig, EpisodeStats
from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.learner import DEVICE_CHOICES, Learner, RLTAlgorithm, resolve_device
from rlt_ros.core.rlt.outcomes import OutcomeGate
from rlt_ros.core.rlt.replay import ReplayBuffer, ReplayError
from rlt_ros.msg import ActorWeights, ClassifierWeights, EpisodeEvent, LearnerStats, RLToken, Transition, TransitionAck
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import MessageError, event_from_msg, header, token_from_msg, transition_from_msg
from rlt_ros.ros.node_base import RltNode, run
from rlt_ros.core.arm import ArmConfig


@dataclass
class LearnerNodeConfig:
    output_dir: str = "runs/rlt"  # replay log, checkpoints and actor/ for actor.initial_weights (resumed from when present)
    checkpoint_every: int = 2000  # critic updates between checkpoints (one is also written at shutdown)
    publish_hz: float = 2.0  # how often new actor weights and metrics are published [Hz]
    sync_every: int = 1  # fsync the replay log after this many transitions (1 = every transition)
    num_threads: int = 1  # torch CPU threads of the updates (0 = torch's default, every core); 1 leaves the other cores to perception and control
    device: str = "auto"  # where the networks train and batches are sampled: auto (a GPU when there is one, else the CPU), cpu, cuda or cuda:N
    stats_every: int = 50  # critic updates between statistics read back from the device (each read-back waits for it)
    cuda_graph: bool = False  # on a CUDA device, replay the update as CUDA graphs (much faster; ignored on the CPU)
    marks_every: int = 0  # retrain the handover switch and success detector after this many operator-marked episodes, from /rlt/token and /rlt/events recorded in <output_dir>/marks (0 = off; the RL token is episode.token_checkpoint's)

    def __post_init__(self):
        if self.checkpoint_every < 1 or self.publish_hz <= 0 or self.sync_every < 1 or self.num_threads < 0:
            raise ValueError("learner: checkpoint_every and sync_every must be >= 1, publish_hz > 0, num_threads >= 0")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"learner.device must be one of {DEVICE_CHOICES}, got {self.device!r}")
        if self.stats_every < 1:
            raise ValueError(f"learner.stats_every must be >= 1, got {self.stats_every}")
        if self.marks_every < 0:
            raise ValueError(f"learner.marks_every must be >= 0 (0 = off), got {self.marks_every}")


class LearnerNode(RltNode):
    CONFIGS = {"arm": ArmConfig, "learner": LearnerNodeConfig, "rlt": RLTConfig,  # prefix -> configuration
               "episode": EpisodeConfig}

    def __init__(self):
        super().__init__("learner")
        cfg, rlt = self.learner_config, self.rlt_config
        if cfg.num_threads:
            import torch

            torch.set_num_threads(cfg.num_threads)
        if rlt.action_dim != len(self.arm_config.joint_names):
            raise ValueError(f"rlt.action_dim = {rlt.action_dim} but the arm has {len(self.arm_config.joint_names)} "
                             "joints")
        device = resolve_device(cfg.device)  # ValueError naming the devices found
        graph = cfg.cuda_graph and device.type == "cuda"
        algorithm = RLTAlgorithm(rlt, device=device, stats_every=cfg.stats_every, cuda_graph=graph)
        fallback = cfg.device == "auto" and device.type == "cpu"
        self.get_logger().info(f"learner on {device}" + (", CUDA graphs" if graph else "")
                               + (" (learner.device 'auto': no CUDA device found)" if fallback else "")
                               + (" (learner.cuda_graph ignored on the CPU)" if cfg.cuda_graph and not graph else ""))
        out = Path(cfg.output_dir).expanduser()
        self.get_logger().info(f"loading the replay buffer and checkpoints of {out}")
        self.replay = ReplayBuffer(rlt.token_dim, rlt.proprio_dim, rlt.chunk_size, rlt.action_dim,
                                   rlt.replay_capacity, out / "replay", sync_every=cfg.sync_every,
                                   token_dtype=rlt.token_dtype)
        self.learner = Learner(algorithm, self.replay, out / "checkpoints", cfg.checkpoint_every,
                               actor_dir=out / "actor", action_stats=self._action_stats())
        resumed = self.learner.resume()
        self.episodes = EpisodeStats(self.episode_config.stats_window, log=out / "episodes.jsonl")
        self.outcomes = OutcomeGate()  # terminal rewards from the episode's outcome event, not the Transition
        self.rejected = 0
        self.duplicates = 0  # transitions received again (resent by the actor's outbox) and dropped
        self._acks: list[tuple[int, int]] = []  # keys to acknowledge at the next publish
        self.skipped_logged = int(self.learner.algorithm.read_stats()["skipped_steps"])
        self.weights_pub = self.create_publisher(ActorWeights, "/rlt/actor_weights", qos.LATCHED)
        self.stats_pub = self.create_publisher(LearnerStats, "/rlt/learner_stats", qos.STREAM)
        self.ack_pub = self.create_publisher(TransitionAck, "/rlt/transitions_ack", qos.TRANSITIONS)
        self.create_subscription(Transition, "/rlt/transitions", self._on_transition, qos.TRANSITIONS)
        self.create_subscription(EpisodeEvent, "/rlt/events", self._on_event, qos.EVENTS)
        self.create_timer(1.0 / cfg.publish_hz, self._publish)
        self.marks = None
        if cfg.marks_every:
            self._start_marks(out / "marks", cfg.marks_every)
        self.learner.start()
        self.get_logger().info(f"replay {out / 'replay'}: {len(self.replay)} transitions; "
                               + (f"resumed at {self.learner.algorithm.num_updates} updates" if resumed
                                  else "fresh learner"))

    def _on_transition(self, msg):
        rlt = self.rlt_config
        key = (msg.episode_id, msg.index)  # uint64 / uint32 by the message type
        if self.replay.holds(*key) or self.outcomes.holds(*key):
            self.duplicates += 1  # a resend: its first copy is stored (acknowledged again) or waits for its outcome
            if self.replay.holds(*key):
                self._acks.append(key)
            return
        try:
            t = transition_from_msg(msg, token_dim=rlt.token_dim, proprio_dim=rlt.proprio_dim,
                                    chunk=rlt.chunk_size, action_dim=rlt.action_dim)
        except MessageError as err:
            self.rejected += 1
            self._acks.append(key)  # refused for good: sending it again would not help
            return self.get_logger().warning(f"rejected transition: {err}", throttle_duration_sec=2.0)
        self._store(self.outcomes.add(t))

    def _on_event(self, msg):
        try:
            event = event_from_msg(msg)
        except MessageError as err:
            self.rejected += 1
            return self.get_logger().warning(f"rejected event: {err}")
        self.episodes.apply(event)
        self._store(self.outcomes.on_event(event))
        if self.marks is not None and self.marks.write_event(event) and self._marks_job is None:
            self.marks.roll()  # the bag is complete: retrain on every closed bag
            self._marks_job = threading.Thread(target=self._retrain_marks, name="marks", daemon=True)
            self._marks_job.start()

    def _action_stats(self):
        """The action scale of the demonstrations, stored with the RL token the vla node runs (None: the
        learner fits it on its warm-up)."""
        from rlt_ros.core.checkpoints import token_checkpoint
        from rlt_ros.core.rlt.action_stats import load_action_stats

        token = Path(self.episode_config.token_checkpoint or token_checkpoint())
        stats = load_action_stats(token)
        if stats is None:
            self.get_logger().warning(f"the RL token in {token} has no action statistics: the action scale is fitted "
                                      "on the warm-up (add them: rlt train-token --stats-only --demos DEMOS --out "
                                      f"{token})")
            return None
        try:
            stats.check_arm(self.rlt_config.action_dim, tuple(self.arm_config.joint_names))
        except ValueError as err:
            raise ValueError(f"episode.token_checkpoint {token}: {err} (it must name the vla node's "
                             "vla.token_checkpoint)") from err
        self.get_logger().info(f"action scale of {stats.episodes} demonstrations ({token})")
        return stats

    # ---- the learned switch and detector ---------------------------------------------------------
    def _start_marks(self, directory: Path, every: int) -> None:
        from rlt_ros.core.checkpoints import token_identity
        from rlt_ros.core.rlt.marks_training import MarksTrainer

        self.marks = MarksTrainer(directory, token_identity(self.episode_config.token_checkpoint or None), every)
        self.marks_stats: dict[str, float] = {}
        self._marks_job: threading.Thread | None = None
        self._marks_done = None  # the finished retraining's MarksUpdate, published by the timer
        self.marks_pubs = {"switch": self.create_publisher(ClassifierWeights, "/rlt/switch_weights", qos.LATCHED),
                           "detector": self.create_publisher(ClassifierWeights, "/rlt/detector_weights", qos.LATCHED)}
        self.create_subscription(RLToken, "/rlt/token", self._on_token, qos.STREAM)
        self.get_logger().info(f"recording /rlt/token and /rlt/events in {directory}; the switch and the detector "
                               f"retrain after every {every} marked episodes (version {self.marks.version} so far)")

    def _on_token(self, msg):
        rlt = self.rlt_config
        try:
            packet = token_from_msg(msg, token_dim=rlt.token_dim, proprio_dim=rlt.proprio_dim)
        except MessageError as err:
            self.rejected += 1
            return self.get_logger().warning(f"rejected token: {err}", throttle_duration_sec=5.0)
        self.marks.write_token(packet)

    def _retrain_marks(self) -> None:
        """The worker thread: one retraining; the timer publishes what it made."""
        try:
            self._marks_done = self.marks.train()
        except Exception as err:  # a broken bag must not stop the learner: say so and go on without this version
            self.get_logger().error(f"retraining the switch and the detector failed: {type(err).__name__}: {err}")
            self._marks_job = None

    def _publish_marks(self) -> None:
        update, self._marks_done = self._marks_done, None
        self._marks_job = None
        for kind, error in update.errors.items():
            self.get_logger().warning(f"the {kind} was not retrained: {error}")
        for kind, model in update.models.items():
            meta, weights = model.to_bytes()
            self.marks_pubs[kind].publish(ClassifierWeights(header=header(self.now()), version=update.version,
                                                            meta_json=meta, safetensors=weights))
        if update.models:
            self.marks_stats = update.metrics
            shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(update.metrics.items()))
            self.get_logger().info(f"switch and detector version {update.version} ({', '.join(update.models)}): {shown}")

    def _store(self, rows):
        """Rows the outcome gate let through (end rows relabelled per the episode's outcome) into the replay."""
        for t in rows:
            try:
                self.replay.add(t)  # flushed to the OS: it survives this process from here on
            except ReplayError as err:
                self.rejected += 1
                self.get_logger().warning(f"rejected transition: {err}", throttle_duration_sec=2.0)
            self._acks.append((t.episode_id, t.index))
        self._acks.extend(self.outcomes.dropped)
        self.outcomes.dropped.clear()
        if self.outcomes.last_drop:
            self.get_logger().warning(self.outcomes.last_drop)
            self.outcomes.last_drop = ""

    def _publish(self):
        self.learner.check()
        if self.marks is not None and self._marks_done is not None:
            self._publish_marks()
        if self._acks:
            episodes, indices = zip(*self._acks)
            self.ack_pub.publish(TransitionAck(header=header(self.now()), episode_ids=list(episodes),
                                               indices=list(indices)))
            self._acks = []
        item = self.learner.weights.get()
        if item is not None:
            version, weights, config_json = item
            self.weights_pub.publish(ActorWeights(header=header(self.now()), version=version,
                                                  config_json=config_json, safetensors=weights))
        s = {**self.learner.stats, **self.learner.progress(), **self.outcomes.counters,
             "duplicate_transitions": self.duplicates, **(self.marks_stats if self.marks is not None else {})}
        skipped = int(s.get("skipped_steps", 0))
        if skipped > self.skipped_logged:
            self.get_logger().warning(f"{skipped - self.skipped_logged} optimiser step(s) skipped (NaN/inf): "
                                      f"{int(s.get('nonfinite_batches', 0))} non-finite batch(es), {skipped} skipped "
                                      "step(s) in all")
            self.skipped_logged = skipped
        if self.learner.behind():
            self.get_logger().warning(
                f"the learner is behind the data: UTD {s['utd_achieved']:.1f} achieved of {self.rlt_config.utd}, "
                f"{int(s['pending_updates'])} updates pending; the actor acts on weights trained less than configured "
                "(a faster machine for the learner, or fewer torch threads for the other nodes)",
                throttle_duration_sec=60.0)
        self.stats_pub.publish(LearnerStats(
            header=header(self.now()), updates=self.learner.algorithm.num_updates, transitions=len(self.replay),
            episodes=len(self.episodes.history), success_rate=self.episodes.success_rate(),
            critical_phase_s=self.episodes.median_critical_s(), critic_loss=float(s.get("critic_loss", 0.0)),
            actor_loss=float(s.get("actor_loss", 0.0)), q_mean=float(s.get("q_mean", 0.0)),
            names=sorted(s), values=[float(s[k]) for k in sorted(s)]))

    def close(self):
        if self.marks is not None:
            if self._marks_job is not None:
                self._marks_job.join(timeout=60.0)
            self.marks.close()  # the open bag closes: its labels count at the next start
        self.learner.stop()
        self.learner.save()
        self.replay.close()


def main(args=None):
    run(LearnerNode, args)


if __name__ == "__main__":
    main()
