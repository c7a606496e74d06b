"""RLT practice on a simulated arm: the critical-phase protocol, headless and in-process.

Per episode (paper: "RL Token", Xu et al. 2026, "The human in the loop", with a simulated operator), the
simulator drives the one episode collector (``rlt_ros.core.control.ChunkController``, as actor_node does on
a robot) one tick per control step and plays the operator's part with episode events:

1. reset (``PracticeConfig.start``: just before the critical phase, the full task, or a curriculum); START;
2. the VLA drives (its chunk executed for ``actor.vla_execute_steps`` rows, then the newest), until
   ``info["in_critical_phase"]`` first becomes true: HANDOVER;
3. critical phase: every C steps a chunk from the RL actor (refining ã, with its fixed-sigma noise) or,
   during warm-up / for the base arm, ã itself; the VLA is queried whenever the collector reads a token
   (a decision, or every ``stride`` steps while recording);
4. the operator marks SUCCESS (+1, from the simulator's ground truth; ``OPERATOR_REACTION_S`` after the plug is
   seated, the token stream of the still scene running meanwhile), or FAILURE (0, terminal) when the
   critical phase lasts longer than it waits (``critical_timeout_s``); an episode out of simulated time
   that nobody marked ends as TIMEOUT (a truncation: bootstrapped, not a terminal 0); with
   ``intervene_after_s`` the operator also takes over (INTERVENTION_START) an RL episode still running
   after that long and teleoperates it to its end (``operator``: reset(obs) at the takeover, then
   act(obs) -> action every step), stored as human actions (ã <- a_human);
5. only critical-phase transitions are stored (one every ``stride`` steps); the learner spends its UTD
   budget after every chunk (``learner_mode=interleaved``) or in its own thread (``async``).

The environment follows ``rlt_ros.core.sim.env.PegInsertionEnv`` (reset/step/observe, joint_names,
joint_limits, control_dt, info["success"], info["in_critical_phase"], info["time"]) and the VLA ``rlt_ros.core.vla.base.VLABackend`` (infer); tests
use small fakes with the same interface.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from rlt_ros.core.arm import ArmConfig
from rlt_ros.core.control import ActorConfig, ChunkController
from rlt_ros.core.episode import OPERATOR_REACTION_S
from rlt_ros.core.interfaces import LATE_SWITCH, EpisodeEventPacket, EventSource, EventType, Phase, TokenPacket
from rlt_ros.core.rlt.action_stats import ActionStats
from rlt_ros.core.rlt.configuration_practice import PracticeConfig
from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.learner import CheckpointMismatchError, Learner, RLTAlgorithm, check_compatible, resolve_device
from rlt_ros.core.rlt.modeling_token import TokenEncoder
from rlt_ros.core.rlt.outcomes import stored_outcome
from rlt_ros.core.rlt.policy import ActorPolicy
from rlt_ros.core.rlt.replay import ReplayBuffer, Transition
from rlt_ros.core.types import Observation, VLAOutput

log = logging.getLogger(__name__)

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes use seeds EVAL_SEED_OFFSET + i (same for every arm)
RUN_CONFIG = "config.json"  # in a run directory: {"rlt": RLTConfig, "practice": PracticeConfig, ...}


def stored_run_config(out_dir: str | Path) -> dict | None:
    """The configuration a run directory was practised with (``RUN_CONFIG``), or None for a new run."""
    path = Path(out_dir) / RUN_CONFIG
    return json.loads(path.read_text()) if path.is_file() else None


IMAGE_STATE_SIZE = 32  # side [px] of the image state (the no-token ablation) unless RLTConfig.state_image_size sets one


class StateReader:
    """(VLAOutput, simulator observation) -> the actor's state vector: z_rl from the RL token (``token``), or
    the cameras' pixels (``image``, the no-token ablation: uint8 [S, S, 3] per camera of ``cameras``, in
    that order, average-pooled down to ``image_size`` = S, flattened; ``RLTConfig.state_image_size``)."""

    def __init__(self, source: str, encoder: TokenEncoder | None = None, cameras: tuple[str, ...] = (),
                 image_size: int = IMAGE_STATE_SIZE):
        if source == "token" and encoder is None:
            raise ValueError("state_source 'token' needs an RL-token encoder (rlt train-token)")
        if source == "image" and not cameras:
            raise ValueError("state_source 'image' needs the camera names")
        if source not in ("token", "image"):
            raise ValueError(f"unknown state source {source!r}; valid: token, image")
        self.source, self.encoder, self.cameras = source, encoder, tuple(cameras)
        self.image_size = int(image_size) if source == "image" else 0
        self.dim = encoder.token_dim if source == "token" else len(self.cameras) * self.image_size ** 2 * 3

    def __call__(self, out: VLAOutput, obs: dict) -> np.ndarray:
        if self.source == "token":
            return self.encoder.encode(out.prefix_embeddings, out.prefix_mask)
        return np.concatenate([downscale(obs["images"][cam], self.image_size).reshape(-1) for cam in self.cameras])


def downscale(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 [H, H, 3] -> uint8 [side, side, 3] by averaging k x k blocks (H = k x side)."""
    image = np.asarray(image)
    h = image.shape[0]
    if image.shape != (h, h, 3) or h % side:
        raise ValueError(f"camera image {image.shape}: expected [H, H, 3] with H a multiple of {side}")
    k = h // side
    if k == 1:
        return image.astype(np.uint8, copy=False)
    blocks = image.reshape(side, k, side, k, 3).mean(axis=(1, 3), dtype=np.float32)
    return np.round(blocks).astype(np.uint8)


TOKEN_LOG_HZ = 25.0  # rate of the recorded token stream, Hz (the graph's observation.rate_hz: one token per observation)


class TokenLog(Protocol):
    """Where practice records what a robot's ``ros2 bag record /rlt/token /rlt/events`` would: a token at
    ``TOKEN_LOG_HZ`` through the whole episode, and every episode event (``rlt_ros.core.data.token_bags``)."""

    def write_token(self, packet: TokenPacket) -> None: ...

    def write_event(self, event: EpisodeEventPacket) -> None: ...


class Operator(Protocol):
    """The simulated operator's teleoperation: ``reset(obs)`` when it takes over, then one joint-target
    action per control step (e.g. ``rlt_ros.core.sim.expert.ScriptedExpert``)."""

    def reset(self, obs: dict) -> None: ...

    def act(self, obs: dict) -> np.ndarray: ...


@dataclass
class EpisodeResult:
    episode: int  # episode id
    kind: str  # warmup (VLA drives, stored), rl (actor drives, stored), base (VLA, not stored), eval (actor, not stored)
    success: bool
    critical_s: float | None  # handover -> end of episode, simulated s (None: never reached the critical phase)
    episode_s: float  # simulated duration of the whole episode, s
    transitions: int  # transitions stored
    updates: int  # learner critic updates after the episode
    wall_s: float  # wall-clock duration, s
    sim_total_s: float = 0.0  # simulated practice time so far (this episode included), s
    learner: dict | None = None  # last learner statistics (critic_loss, q_mean, mu_deviation, ...)
    intervened: bool = False  # the operator took over (teleoperated) the end of the episode
    presses: int = 0  # the operator's button presses: handover and success/failure marks (not takeovers)
    handover_presses: int = 0  # of those, the handover presses (the rest mark the outcome)


@dataclass
class LearnedMarks:
    """The learned handover switch and success detector marking practice episodes in place of the simulated
    operator, run on the recorded token stream (``TOKEN_LOG_HZ``) as the reward node runs them with
    ``episode.handover: auto`` and ``reward.detector: auto``. The operator watches and presses only to
    correct them: a handover the switch has not made within its ``tolerance_s`` of the critical phase's
    start; a verdict the plug contradicts when the operator looks, ``OPERATOR_REACTION_S`` later, the arm
    finishing its command meanwhile (an overrule: the episode ends with the operator's outcome); a seated
    plug no success verdict followed within ``grace_s`` (the scene holds still meanwhile); a failure
    at its patience (``PracticeConfig.critical_timeout_s``). Evaluation episodes are marked as before."""

    switch: object | None = None  # rlt_ros.core.rlt.switch.HandoverSwitch
    detector: object | None = None  # rlt_ros.core.rlt.detector.DetectorRunner
    grace_s: float = 0.5  # the operator marks a seated plug's success when no verdict followed within this [s]

    def __post_init__(self) -> None:
        if self.switch is None and self.detector is None:
            raise ValueError("LearnedMarks needs a handover switch, a success detector or both")
        self.gate = None if self.switch is None else self.switch.gate()


def sim_observation(obs: dict, instruction: str, proprio_dim: int | None = None) -> Observation:
    """The simulator's observation dict -> Observation; proprio is cut to the VLA's ``proprio_dim`` when it
    takes fewer values (e.g. joint positions + velocities without the end-effector pose)."""
    proprio = np.asarray(obs["proprio"], np.float32)
    if proprio_dim is not None and proprio_dim < proprio.shape[0]:
        proprio = proprio[:proprio_dim]
    return Observation(images=obs["images"], proprio=proprio, instruction=instruction,
                       stamp=float(obs.get("stamp", 0.0)))


def sim_arm(env) -> ArmConfig:
    """The simulated arm's joints and limits as the collector's ArmConfig (its clamp is the driver's)."""
    lim = env.joint_limits
    return ArmConfig(name="sim", joint_names=tuple(env.joint_names), position_lower=tuple(lim.lower),
                     position_upper=tuple(lim.upper), max_velocity=tuple(lim.max_velocity),
                     control_hz=1.0 / float(env.control_dt))


class Practice:
    """Runs practice episodes on ``env`` with ``vla``; owns the replay buffer and the learner.

    ``device``: where the learner trains (auto | cpu | cuda[:N]); the acting policy always runs on the CPU.
    ``actor``: the collector's settings (ActorConfig, as actor_node's ``actor.*``; default values).
    ``out_dir``: where the replay log, checkpoints, episodes.jsonl and the final actor go; an existing run
    there is resumed (its configuration must match, else CheckpointMismatchError and nothing is touched).
    ``token_log``: records the token stream and the events (the handover switch's data: ``rlt train-switch``);
    its clock runs on across episodes (each starts 1 s after the previous one ended).
    ``marks``: the learned switch and detector mark practice episodes, the operator only corrects them.
    ``action_stats``: the demonstrations' action scale stored with the RL token (None: fitted on the warm-up).
    """

    def __init__(self, env, vla, state_reader: StateReader, rlt_cfg: RLTConfig, cfg: PracticeConfig,
                 out_dir: str | Path | None = None, progress: bool = True,
                 on_transition: Callable[[Transition], None] | None = None, extra_config: dict | None = None,
                 operator: Operator | None = None, actor: ActorConfig | None = None, device: str = "cpu",
                 token_log: TokenLog | None = None, marks: LearnedMarks | None = None,
                 action_stats: ActionStats | None = None):
        if cfg.intervene_after_s > 0 and operator is None:
            raise ValueError(f"PracticeConfig.intervene_after_s={cfg.intervene_after_s} needs an operator "
                             "to take over (teleoperate) the episode")
        self.env, self.vla, self.reader, self.operator = env, vla, state_reader, operator
        self.token_log, self._log_clock, self._log_offset = token_log, 0.0, 0.0
        self.marks = marks
        self.rlt_cfg, self.cfg = rlt_cfg, cfg
        self.progress = progress
        self.on_transition = on_transition
        self.instruction = getattr(env, "instruction", "")
        self._check_dims()
        self.arm, self.dt = sim_arm(env), float(env.control_dt)
        self.log_every = max(1, round(1.0 / (TOKEN_LOG_HZ * self.dt)))  # control steps per recorded token
        # the collector as in-process practice runs it: active at once, no transport lead, no latency
        self.actor_cfg = replace(actor or ActorConfig(), autostart=True, lead_rows=0)
        torch.set_num_threads(cfg.num_threads)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.results: list[EpisodeResult] = []
        self.sim_time_s = 0.0
        self.rng = np.random.default_rng(cfg.seed + 17)
        if self.out_dir is not None:
            self._prepare_out_dir(extra_config or {})
        replay_dir = None if self.out_dir is None else self.out_dir / "replay"
        self.replay = ReplayBuffer(rlt_cfg.token_dim, rlt_cfg.proprio_dim, rlt_cfg.chunk_size, rlt_cfg.action_dim,
                                   capacity=rlt_cfg.replay_capacity, directory=replay_dir,
                                   token_dtype=rlt_cfg.token_dtype)
        self.algorithm = RLTAlgorithm(rlt_cfg, device=resolve_device(device))
        self.learner = Learner(self.algorithm, self.replay,
                               None if self.out_dir is None else self.out_dir / "checkpoints",
                               actor_dir=None if self.out_dir is None else self.out_dir / "actor",
                               action_stats=action_stats)
        self.learner.resume()
        self._load_episode_log()
        if cfg.learner_mode == "async" or self.algorithm.device.type != "cpu":
            self.policy = self.algorithm.policy()  # a CPU copy, refreshed from the weight queue / the exports
        else:
            self.policy = ActorPolicy(rlt_cfg, self.algorithm.actor, self.algorithm.normalizer)

    # ---- setup ------------------------------------------------------------------------------------
    def _check_dims(self) -> None:
        c, e, v = self.rlt_cfg, self.env, self.vla
        problems = []
        if c.action_dim != e.action_dim:
            problems.append(f"RLTConfig.action_dim={c.action_dim} but the arm has {e.action_dim} joints")
        if c.proprio_dim != e.proprio_dim:
            problems.append(f"RLTConfig.proprio_dim={c.proprio_dim} but the arm's proprio has {e.proprio_dim}")
        if c.token_dim != self.reader.dim:
            problems.append(f"RLTConfig.token_dim={c.token_dim} but the state vector ({self.reader.source}) has "
                            f"{self.reader.dim}")
        if v.action_dim != e.action_dim:
            problems.append(f"the VLA outputs {v.action_dim}-D actions but the arm has {e.action_dim} joints")
        if v.chunk_size < c.chunk_size:
            problems.append(f"the VLA's chunk H={v.chunk_size} is shorter than the actor's C={c.chunk_size}")
        if c.state_image_size != self.reader.image_size:
            problems.append(f"RLTConfig.state_image_size={c.state_image_size} but the state reader gives "
                            f"{self.reader.image_size} px images (0: z_rl)")
        if self.reader.source != self.cfg.state_source:
            problems.append(f"PracticeConfig.state_source={self.cfg.state_source!r} but the state reader gives "
                            f"{self.reader.source!r}")
        if problems:
            raise ValueError("practice set-up is inconsistent: " + "; ".join(problems))

    def _prepare_out_dir(self, extra: dict) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / RUN_CONFIG
        stored = stored_run_config(self.out_dir)
        if stored is not None:
            check_compatible(RLTConfig.from_dict(stored["rlt"]), self.rlt_cfg, f"run in {self.out_dir}")
            if stored["practice"].get("state_source") != self.cfg.state_source:
                raise CheckpointMismatchError(
                    f"the run in {self.out_dir} used state_source={stored['practice'].get('state_source')!r}, "
                    f"not {self.cfg.state_source!r}; nothing stored was changed")
        payload = {"rlt": self.rlt_cfg.to_dict(), "practice": self.cfg.to_dict(), **extra}
        tmp = path.with_name(f".{RUN_CONFIG}.tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        tmp.replace(path)

    def _load_episode_log(self) -> None:
        self.next_episode = 0
        if self.out_dir is not None and (self.out_dir / "episodes.jsonl").is_file():
            for line in (self.out_dir / "episodes.jsonl").read_text().splitlines():
                try:
                    self.results.append(EpisodeResult(**json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    break  # a torn last line from a crash
        self.sim_time_s = sum(r.episode_s for r in self.results)
        ids = [r.episode for r in self.results]
        if len(self.replay):
            ids.append(int(self.replay.arrays()["episode_id"].max()))
        self.next_episode = max(ids) + 1 if ids else 0

    # ---- one episode ------------------------------------------------------------------------------
    def _infer(self, obs: dict) -> VLAOutput:
        if not obs.get("images"):
            obs.update(self.env.observe(render=True))
        return self.vla.infer(sim_observation(obs, self.instruction, getattr(self.vla, "proprio_dim", None)))

    def _event(self, ctl: ChunkController, episode: int, k: int, kind: EventType,
               source: EventSource = EventSource.HUMAN, note: str = "",
               stored: EventType | None = None, after_s: float = 0.0) -> list[Transition]:
        """Log the event, ``after_s`` after step ``k``, and apply it to the controller; ``stored``: the outcome
        the rows are stored by when it is not ``kind`` (``outcomes.stored_outcome``, as the learner's gate
        judges it in the graph)."""
        reward = 1.0 if kind == EventType.SUCCESS else 0.0
        event = EpisodeEventPacket(k * self.dt + after_s, episode, kind, source, reward, note)
        if self.token_log is not None:
            if kind == EventType.START:
                self._log_offset = self._log_clock
            self.token_log.write_event(replace(event, stamp=event.stamp + self._log_offset))
            if kind.terminal:
                self._log_clock = event.stamp + self._log_offset + 1.0
        if stored is not None and stored != kind:
            event = replace(event, type=stored, reward=1.0 if stored == EventType.SUCCESS else 0.0)
        return ctl.on_event(event)

    def run_episode(self, episode: int, kind: str, seed: int, start: str) -> EpisodeResult:
        """One episode, kind warmup | rl | base | eval (see EpisodeResult.kind): the simulated operator's
        events (start, handover, takeover, success/timeout; in practice episodes with ``marks``, the learned
        switch's and detector's, which the operator corrects) and one ``ChunkController.tick`` per control
        step, at simulated time k * dt; the VLA is queried only when the controller reads a token."""
        wall0 = time.perf_counter()
        env, c = self.env, self.rlt_cfg
        obs, info = env.reset(seed=seed, options={"start": start})
        t0 = float(info.get("time", 0.0))
        record, actor_drives = kind in ("warmup", "rl"), kind in ("rl", "eval")
        marks = self.marks if record else None
        ctl = ChunkController(replace(self.actor_cfg, explore=self._explore(kind), record=record), c, self.arm,
                              rng=self.rng)
        ctl.policy = self.policy if actor_drives else None
        intervene_after = self.cfg.intervene_after_s if kind == "rl" else 0.0
        stored, k, handover, human, rows, row, handover_presses = 0, 0, None, False, None, 0, 0
        critical_at, verdict, crit_s = None, None, None
        self._event(ctl, episode, 0, EventType.START, EventSource.SYSTEM)
        while True:
            now = k * self.dt
            obs_q = np.asarray(obs["proprio"], np.float64)[: c.action_dim]  # proprio starts with the joint positions
            if critical_at is None and info.get("in_critical_phase", False):
                critical_at = k
            logged = None
            if (self.token_log is not None or marks is not None) and k % self.log_every == 0:
                logged = self._token(obs, episode, now, True)
                if marks is not None:
                    fired, verdict = self._marks_tick(marks, episode, logged, handover, k)
                    if fired:
                        handover = k
                        self._event(ctl, episode, k, EventType.HANDOVER, EventSource.DETECTOR)
            late = marks is None or marks.switch is None or (
                critical_at is not None and (k - critical_at) * self.dt >= marks.switch.cfg.tolerance_s - 1e-9)
            if handover is None and critical_at is not None and late:
                handover, handover_presses = k, 1  # the operator hands over (with a switch: it was late)
                self._event(ctl, episode, k, EventType.HANDOVER,
                            note="" if marks is None or marks.switch is None else LATE_SWITCH)
            if logged is not None and self.token_log is not None:
                self.token_log.write_token(replace(logged, stamp=now + self._log_offset,
                                                   phase=Phase.VLA if handover is None else Phase.RL))
            if verdict is not None:
                break  # the detector's verdict ends the episode
            crit_steps = 0 if handover is None else k - handover
            if handover is not None and (crit_steps % c.chunk_size == 0):
                self._between_chunks(record, actor_drives)
            if intervene_after and not human and crit_steps * self.dt >= intervene_after - 1e-9:
                human = True  # the operator takes over for the rest of the episode
                self.operator.reset(obs)
                self._event(ctl, episode, k, EventType.INTERVENTION_START)
            if human:
                ctl.set_teleop(self.operator.act(obs), now)
            ctl.set_joint_state(obs_q, now, now)
            if ctl.wants_token(now):
                ctl.set_token(logged or self._token(obs, episode, now, handover is not None and (record or actor_drives)),
                              now)
            step = ctl.tick(now)
            stored += self._store(step.transitions)
            if step.command is not None:
                rows, row = step.command.positions, 0
            if rows is None:
                raise RuntimeError(f"practice: the controller sent no command at step {k}: {step.warning}")
            action = rows[min(row, len(rows) - 1)]
            row, k = row + 1, k + 1
            obs, _, terminated, truncated, info = env.step(action, render=False)
            crit_s = None if handover is None else (k - handover) * self.dt
            if terminated or truncated or (crit_s is not None and crit_s >= self.cfg.critical_timeout_s - 1e-9):
                break
        # the operator marks success, or failure once the critical phase outlasts its patience (terminal:
        # reward 0, no bootstrap); an episode out of time that nobody marked is a TIMEOUT (a truncation).
        # With a learned detector its verdict marks, and the operator overrules one the plug contradicts when
        # it looks, its reaction time later.
        if verdict is not None:  # the operator looks at the plug once its reaction time has passed
            obs, info = self._coast(episode, rows, row, k, obs, info, handover)
        seated, after_s = bool(info.get("success", False)), 0.0
        judged = marks is not None and marks.detector is not None
        if seated and verdict is None and (self.token_log is not None or judged):
            verdict, after_s = self._after_seating(marks, episode, obs, k, crit_s)
        if verdict is not None:
            end = EventType.SUCCESS if seated else EventType.FAILURE
            source = EventSource.DETECTOR if verdict == seated else EventSource.HUMAN  # else its overrule
            after_s += 0.0 if verdict == seated else OPERATOR_REACTION_S  # the overrule comes once it looked
        elif seated:
            end, source = EventType.SUCCESS, EventSource.HUMAN
        elif crit_s is not None and crit_s >= self.cfg.critical_timeout_s - 1e-9:
            end, source = EventType.FAILURE, EventSource.HUMAN
        else:
            end, source = EventType.TIMEOUT, EventSource.TIMEOUT
        presses = handover_presses + (source == EventSource.HUMAN)
        marked = {(end, source == EventSource.DETECTOR)}  # + the verdict the operator overruled, if any
        if verdict is not None and verdict != seated:
            marked.add((EventType.SUCCESS if verdict else EventType.FAILURE, True))
        stored += self._store(self._event(ctl, episode, k, end, source, stored=stored_outcome(marked)[0],
                                          after_s=after_s))
        success = end == EventType.SUCCESS
        if record:
            self.replay.sync()
            if self.cfg.learner_mode == "interleaved":
                self.learner.catch_up()
        return self._result(episode, kind, success, crit_s, float(info["time"]) - t0, stored, wall0, human, presses,
                            handover_presses)

    def _marks_tick(self, marks: LearnedMarks, episode: int, packet: TokenPacket, handover: int | None,
                    k: int) -> tuple[bool, bool | None]:
        """One token tick of the learned marks: (the switch hands over now, the detector's verdict or None)."""
        fired = False
        if marks.gate is not None and handover is None:
            fired = marks.gate.update(episode, marks.switch.probability(packet.token, packet.proprio))
            handover = k if fired else None
        if marks.detector is None:
            return fired, None
        p = marks.detector.push(episode, packet.token, packet.proprio)
        return fired, marks.detector.judge(episode, None if handover is None else (k - handover) * self.dt, p)

    def _coast(self, episode: int, rows: np.ndarray, row: int, k: int, obs: dict, info: dict,
               handover: int | None) -> tuple[dict, dict]:
        """After a verdict at step ``k`` the arm goes on with the command it was sent (its driver follows the
        chunk's rows, then holds the last) until the operator looks, ``OPERATOR_REACTION_S`` later, as in the
        graph: a plug that seats meanwhile is a success to the operator. Nothing is stored from these steps;
        the token stream runs on (recorded). Returns the observation and info the operator judges."""
        for j in range(int(round(OPERATOR_REACTION_S / self.dt))):
            if info.get("success", False):
                break  # the simulator has ended the episode: the scene holds still
            if self.token_log is not None and (k + j) % self.log_every == 0 and j:
                packet = self._token(obs, episode, (k + j) * self.dt, True)
                self.token_log.write_token(replace(packet, stamp=packet.stamp + self._log_offset,
                                                   phase=Phase.VLA if handover is None else Phase.RL))
            obs, _, _, truncated, info = self.env.step(rows[min(row + j, len(rows) - 1)], render=False)
            if truncated:
                break
        return obs, info

    def _after_seating(self, marks: LearnedMarks | None, episode: int, obs: dict, k: int,
                       crit_s: float | None) -> tuple[bool | None, float]:
        """The still scene after the plug is seated (the simulator ended the episode at step ``k``): its token
        stream runs on, recorded, while the detector judges it for the operator's grace, else until the
        operator's success press (``OPERATOR_REACTION_S``), as in the graph: the operator's success marks
        then follow ticks of a seated plug, which the detector learns success from. Returns (the detector's
        verdict or None, the time from step ``k`` to the mark [s])."""
        detector = None if marks is None else marks.detector
        wait_s = OPERATOR_REACTION_S if detector is None else marks.grace_s
        packet = self._token(obs, episode, k * self.dt, True)
        phase = Phase.VLA if crit_s is None else Phase.RL
        tick = -(-k // self.log_every) * self.log_every  # the stream's next tick (the loop logged none at k)
        while (tick - k) * self.dt <= wait_s + 1e-9:
            after_s, tick = (tick - k) * self.dt, tick + self.log_every
            if self.token_log is not None:
                self.token_log.write_token(replace(packet, stamp=k * self.dt + after_s + self._log_offset,
                                                   phase=phase))
            if detector is not None:
                p = detector.push(episode, packet.token, packet.proprio)
                verdict = detector.judge(episode, None if crit_s is None else crit_s + after_s, p)
                if verdict is not None:
                    return verdict, after_s
        return None, wait_s

    def _token(self, obs: dict, episode: int, now: float, with_state: bool) -> TokenPacket:
        """The VLA on the current observation -> the controller's token (z_rl only where it is read)."""
        out = self._infer(obs)
        state = self.reader(out, obs) if with_state else np.zeros(self.rlt_cfg.token_dim, np.float32)
        return TokenPacket(stamp=now, episode_id=episode, phase=Phase.RL, token=np.asarray(state, np.float32),
                           proprio=np.asarray(obs["proprio"], np.float32), joint_names=self.arm.joint_names,
                           reference_chunk=np.asarray(out.reference_chunk), step_dt=self.dt)

    def _between_chunks(self, record: bool, actor_drives: bool) -> None:
        """Every C critical-phase steps: the interleaved learner spends its budget, the async one's newest
        weights reach the acting policy."""
        if record and self.cfg.learner_mode == "interleaved":
            self.learner.catch_up()
            if self.algorithm.device.type != "cpu" and self.policy.version != self.algorithm.num_updates:
                self.policy.update_from_export(*self.algorithm.export())  # the learner trains on another device
        if actor_drives and self.cfg.learner_mode == "async":
            self._refresh_async_policy()

    def _explore(self, kind: str) -> bool:
        return (kind == "rl" and self.cfg.explore) or (kind == "eval" and self.cfg.eval_explore)

    def _store(self, transitions: list[Transition]) -> int:
        for tr in transitions:
            self.replay.add(tr)
            if self.on_transition is not None:
                self.on_transition(tr)
        return len(transitions)

    def _refresh_async_policy(self) -> None:
        item = self.learner.weights.get()
        if item is not None:
            _, weights, cfg_json = item
            self.policy.update_from_export(weights, cfg_json)
        while self.learner.pending() > self.cfg.max_lag_updates:  # simulation only: keep the UTD honest
            self.learner.check()
            time.sleep(0.002)

    def _result(self, episode, kind, success, crit_s, episode_s, stored, wall0, intervened=False,
                presses=0, handover_presses=0) -> EpisodeResult:
        if kind in ("warmup", "rl", "base"):
            self.sim_time_s += episode_s
        return EpisodeResult(episode=episode, kind=kind, success=bool(success), critical_s=crit_s,
                             episode_s=episode_s, transitions=stored, updates=self.algorithm.num_updates,
                             wall_s=time.perf_counter() - wall0, sim_total_s=self.sim_time_s,
                             learner={k: round(float(v), 5) for k, v in self.learner.stats.items()} or None,
                             intervened=bool(intervened), presses=int(presses),
                             handover_presses=int(handover_presses))

    # ---- the run ----------------------------------------------------------------------------------
    def episode_seed(self, episode: int) -> int:
        return self.cfg.seed * 100_003 + episode

    def done(self) -> bool:
        return len(self.results) >= self.cfg.episodes or self.sim_time_s >= 60.0 * self.cfg.sim_minutes

    def run(self) -> list[EpisodeResult]:
        """Practise until the episode or simulated-time budget is spent; checkpoints on schedule."""
        from tqdm import tqdm

        if self.cfg.learner_mode == "async":
            self.learner.start()
        bar = tqdm(total=self.cfg.episodes, initial=len(self.results), desc="practice", unit="ep",
                   disable=not self.progress)
        try:
            while not self.done():
                ep = self.next_episode
                if self.cfg.policy == "vla":
                    kind = "base"
                else:
                    kind = "rl" if self.learner.ready() else "warmup"
                res = self.run_episode(ep, kind, self.episode_seed(ep), self.cfg.start_for(len(self.results)))
                self.next_episode += 1
                self._log(res)
                bar.update(1)
                bar.set_postfix(self.postfix())
                if self.cfg.checkpoint_every and len(self.results) % self.cfg.checkpoint_every == 0:
                    self.checkpoint()
        finally:
            bar.close()
            if self.cfg.learner_mode == "async":
                self.learner.stop()
        self.checkpoint()
        return self.results

    def _log(self, res: EpisodeResult) -> None:
        self.results.append(res)
        if self.out_dir is not None:
            with open(self.out_dir / "episodes.jsonl", "a") as f:
                f.write(json.dumps(asdict(res)) + "\n")
                f.flush()

    def postfix(self, window: int = 20) -> dict:
        recent = [r for r in self.results if r.kind in ("rl", "base", "warmup")][-window:]
        succ = [r.critical_s for r in recent if r.success and r.critical_s is not None]
        out = {"succ": f"{np.mean([r.success for r in recent]):.2f}" if recent else "-",
               "crit_s": f"{np.median(succ):.2f}" if succ else "-", "upd": self.algorithm.num_updates,
               "sim_min": f"{self.sim_time_s / 60:.1f}"}
        if self.cfg.intervene_after_s:
            out["interv"] = sum(r.intervened for r in recent)
        if self.marks is not None:
            out["presses"] = sum(r.presses for r in recent)
        return out

    def checkpoint(self) -> None:
        if self.out_dir is None or self.cfg.policy == "vla":
            return
        self.learner.extra_state = {"episodes": len(self.results), "sim_time_s": self.sim_time_s}
        self.learner.save()  # the checkpoint, and the actor alone in <out>/actor

    def evaluate(self, episodes: int, kind: str = "eval", start: str | None = None) -> dict:
        """``episodes`` episodes with seeds EVAL_SEED_OFFSET + i: the actor without noise (kind=eval) or
        the VLA alone (kind=base); nothing is stored, nothing is learnt."""
        results = []
        saved_time = self.sim_time_s
        for i in range(episodes):
            results.append(self.run_episode(EVAL_SEED_OFFSET + i, kind, EVAL_SEED_OFFSET + i,
                                            start or self.cfg.start_for(10**9)))
        self.sim_time_s = saved_time
        return summarize(results)


def summarize(results: list[EpisodeResult]) -> dict:
    """Success rate, median critical phase of successes [s], throughput (successes per 10 simulated min),
    how many episodes the operator took over (their successes count: the operator marks the outcome), and
    the operator's button presses (handover and outcome marks; ``handover_presses`` of them hand over)."""
    n = len(results)
    succ = [r for r in results if r.success]
    crit = [r.critical_s for r in succ if r.critical_s is not None]
    total_s = sum(r.episode_s for r in results)
    return {
        "episodes": n,
        "success_rate": len(succ) / n if n else 0.0,
        "critical_phase_s": float(np.median(crit)) if crit else None,
        "throughput_per_10min": (len(succ) / total_s * 600.0) if total_s > 0 else 0.0,
        "sim_time_s": total_s,
        "interventions": sum(r.intervened for r in results),
        "presses": sum(r.presses for r in results),
        "handover_presses": sum(r.handover_presses for r in results),
    }
