"""The episode collector, pure: which chunk runs, when to replan, hold, and what to record.

This is the one episode loop of rlt_ros. ``actor_node`` drives it from ROS topics and its control timer;
in-process practice (``rlt sim-train``, ``bench/``; ``rlt_ros.core.rlt.practice``) drives it from the
simulator, one tick per control step. So the benchmark measures what the robot runs.

``ChunkController.tick(now)`` is called at the control rate. It returns the command to send (a
clamped chunk of absolute joint targets, only when a new one starts) and the critical-phase
transitions that just closed. Phases follow /rlt/events (``PhaseTracker``):
  VLA          execute the first ``vla_execute_steps`` rows of the newest reference chunk ã, replan
  RL           every C steps: a = actor(z_rl, proprio, ã) (ã itself until weights arrive: warm-up), where ã is
               the next C rows of the VLA's executing plan (``ReferencePlan``, replanned every
               ``vla_execute_steps`` rows), so the untrained actor behaves as the base policy
  INTERVENTION execute the newest teleop target (the transition's ã is relabelled to it)
Rows are counted by the clock, not by ticks (row i of a chunk sent at t0 is the target of the step at
t0 + i dt), so a late or skipped tick neither leaves the driver without targets nor loses a recorded row;
the next chunk is sent ``lead_rows`` steps before the running one ends, so that it reaches the driver
before the driver runs out of targets. Every new chunk starts at the row that belongs to *now*: a token
whose observation is k control steps old has its first k rows dropped (``rows_elapsed``), so pipeline
latency never drags the arm back. A chunk under way runs to its end (the driver already holds it as one
trajectory); a new chunk is never started from a stale token (too old, or observed before the episode's
START, i.e. showing the scene before the reset): stale tokens or joint states hold the arm at its
last commanded point. Weights staged by another thread are swapped in only at a chunk boundary.

What the arm can be at is the commanded path (every command sent, with the point it started from), not
/joint_states, which any process on the domain can publish: each new chunk and each hold is velocity-clamped
from the path's point of the previous control step. The measured positions only anchor a path that does not
exist yet (the first command after an activation, a START, or a clock that jumped back), and only when the
recent measurements agree with one another (two publishers on /joint_states do not). A measured position
farther than ``max_divergence_rad`` from every point of the recent commanded path (the arm was pushed, reset
or blocked, or the joint states are forged) stops new commands (and holds: either point may be far from the
real arm, so the driver keeps its last goal); after ``divergence_ticks`` such ticks in a row the actor
deactivates (an ``autostart`` actor re-arms at the next START; others wait for /rlt/actor/activate).

ã stays in step with the arm: whenever ã is read (a decision, or a recorded observation every ``stride``
rows) the plan first ``follow``s the last row sent, so a faster actor is never anchored behind itself and
every stored window's ã / ã' is the reference the actor would be given at that row. Episode ends: SUCCESS
and FAILURE are terminal (no bootstrap past them); a TIMEOUT is a truncation (the state holds no time):
complete windows keep their bootstrapped targets and the windows still open are dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rlt_ros.core.arm import ArmConfig, clamp_chunk
from rlt_ros.core.episode import PhaseTracker
from rlt_ros.core.interfaces import ChunkSource, EpisodeEventPacket, EventType, Phase, TokenPacket
from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.policy import ActorPolicy
from rlt_ros.core.rlt.reference import ReferencePlan, rows_elapsed
from rlt_ros.core.rlt.replay import SOURCE_HUMAN, SOURCE_RL, SOURCE_VLA, ChunkRecorder, Transition
from rlt_ros.core.validation import MessageError

LATE_RECORDER_S = 1.0  # a recorder opened this long after the handover numbers its windows from the handover


@dataclass
class ActorConfig:
    autostart: bool = False  # act without a call to /rlt/actor/activate (simulation); real arms start inactive
    explore: bool = True  # add the actor's fixed-sigma exploration noise in the RL phase (off for evaluation)
    record: bool = True  # publish critical-phase transitions for the learner
    max_token_age_s: float = 0.3  # hold position when the newest RL token is older than this [s]
    max_joint_state_age_s: float = 0.2  # hold (send nothing) when the joint states are older than this [s]
    max_teleop_age_s: float = 0.3  # during an intervention, hold when the teleop input is older than this [s]
    lead_rows: int = 1  # a new chunk is sent this many control steps before the running one ends, so the driver never runs out of targets while it travels (0: at the end, as in-process)
    vla_execute_steps: int = 30  # rows of a VLA chunk executed (VLA phase) or used as the actor's reference (RL phase) before replanning on a newer token (the base VLA is tuned for 30)
    initial_weights: str = ""  # folder with actor.safetensors + actor_config.json to start from ('' = pass ã through until the learner sends weights)
    seed: int = 0  # seed of the exploration noise
    report_every_s: float = 30.0  # period of the log line with chunks, holds, clamps, latency-dropped rows [s]
    max_divergence_rad: float = 0.3  # no new command while a measured joint is farther than this from the recent commanded path; deactivate... [rad]
    divergence_ticks: int = 10  # ...when that lasts this many control ticks in a row (also: the control steps of path the measurement is compared with)
    outbox_dir: str = "runs/rlt/outbox"  # transitions kept until the learner acknowledges them, one file each (kept over restarts of either node; put it in the learner's run folder; '' = in memory)
    outbox_capacity: int = 50_000  # most unacknowledged transitions kept; beyond it the oldest are dropped, with a warning
    resend_after_s: float = 5.0  # a transition not acknowledged this long after it was sent is sent again [s]

    def __post_init__(self):
        for name in ("max_token_age_s", "max_joint_state_age_s", "max_teleop_age_s", "report_every_s", "resend_after_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"actor.{name} must be > 0 s")
        if self.vla_execute_steps < 1:
            raise ValueError("actor.vla_execute_steps must be >= 1")
        if self.lead_rows < 0:
            raise ValueError("actor.lead_rows must be >= 0")
        if self.max_divergence_rad <= 0 or self.divergence_ticks < 1:
            raise ValueError("actor.max_divergence_rad must be > 0 rad and actor.divergence_ticks >= 1")
        if self.outbox_capacity < 1:
            raise ValueError("actor.outbox_capacity must be >= 1")


@dataclass
class Command:
    positions: np.ndarray  # [N, A] clamped absolute joint targets, one row per control step
    episode_id: int
    source: ChunkSource


@dataclass
class Step:
    command: Command | None = None  # a new chunk to send now (None: keep executing the current one)
    transitions: list[Transition] = field(default_factory=list)  # critical-phase transitions that closed
    warning: str = ""


class ChunkController:
    def __init__(self, config: ActorConfig, rlt: RLTConfig, arm: ArmConfig,
                 rng: np.random.Generator | None = None):
        if rlt.action_dim != len(arm.joint_names):
            raise ValueError(f"rlt.action_dim = {rlt.action_dim} but the arm has {len(arm.joint_names)} joints "
                             f"{list(arm.joint_names)}")
        self.config, self.rlt, self.arm = config, rlt, arm
        self.active = config.autostart
        self.tracker = PhaseTracker()
        self.policy: ActorPolicy | None = None
        self._staged: ActorPolicy | None = None
        self._lock = threading.Lock()
        self._rng = rng if rng is not None else np.random.default_rng(config.seed)  # exploration noise
        self._token: TokenPacket | None = None
        self._q = None
        self._q_stamp = -np.inf
        self._measured: deque = deque(maxlen=max(2, config.divergence_ticks))  # recent (stamp, position) samples
        self._path: np.ndarray | None = None  # the commanded path: [anchor, rows sent...]; row i is the target at
        self._path_t0 = 0.0  # ... step t0 + i dt (the anchor is the previous step's target)
        self._diverging, self._last_divergence = 0, 0.0  # consecutive ticks with the measured position far from the commanded path
        self._rearm_at_start = False  # deactivated by a divergence; an autostart actor re-arms at the next START
        self._teleop = None
        self._teleop_at = -np.inf
        self._plan: np.ndarray | None = None
        self._reference = ReferencePlan(config.vla_execute_steps, rlt.chunk_size)
        self._plan_source = ChunkSource.HOLD
        self._plan_t0 = 0.0  # when the running plan was sent: its row i is the target of control step t0 + i dt
        self._index = 0  # rows of the running plan accounted for (recorded)
        self._last_row: np.ndarray | None = None  # the last row executed in the RL/intervention phase
        self._holding = False
        self._recorder: ChunkRecorder | None = None
        self._episode_start = -np.inf  # stamp of this episode's START: older observations show the previous scene
        self._critical_start: float | None = None  # stamp of this episode's HANDOVER (or first intervention)
        self.counters = {"chunks": 0, "holds": 0, "clamped": 0, "transitions": 0, "weight_swaps": 0,
                         "latency_rows": 0, "max_deviation_mrad": 0, "nonfinite_chunks": 0,
                         "max_divergence_mrad": 0, "divergence_stops": 0, "unsettled_joint_states": 0}
        # latency_rows: chunk rows dropped because their time had passed; max_deviation_mrad: the largest
        # |actor chunk - ã| of any joint and row so far, milliradians (how far the actor strays from the VLA);
        # max_divergence_mrad: the largest distance of a measured position from the recent commanded path so far
        if config.initial_weights:
            self.policy = load_policy_file(config.initial_weights, rlt)

    # --- inputs -------------------------------------------------------------------------------------
    def set_token(self, packet: TokenPacket, now: float) -> None:
        """The newest token wins; one stamped in the future (beyond the max token age) raises MessageError
        and is never used, and a held token newer than ``now`` (the clock jumped back: a simulator or driver
        restart) gives way to any current one."""
        _not_from_the_future(packet.stamp, now, self.config.max_token_age_s, "RL token")
        with self._lock:
            held = self._token
            if held is None or packet.stamp >= held.stamp or held.stamp > now:
                self._token = packet

    def set_joint_state(self, position: np.ndarray, stamp: float, now: float) -> None:
        _not_from_the_future(stamp, now, self.config.max_joint_state_age_s, "joint state")
        with self._lock:
            self._q, self._q_stamp = np.asarray(position, np.float64), stamp
            self._measured.append((stamp, self._q))

    def set_teleop(self, target: np.ndarray, now: float) -> None:
        with self._lock:
            self._teleop, self._teleop_at = np.asarray(target, np.float64), now

    def set_active(self, active: bool, now: float) -> Step:
        """Activate (the next command starts from the arm as measured: it may have been moved meanwhile) or
        deactivate (one hold at the commanded point, then nothing)."""
        with self._lock:
            step = Step()
            if active and not self.active:
                self._path, self._diverging, self._holding = None, 0, False
            elif not active and self.active and self.tracker.phase != Phase.IDLE and self._path is not None:
                self._hold("deactivated: holding position", step, now)
            self.active, self._plan, self._rearm_at_start = bool(active), None, False
            return step

    def stage_weights(self, weights: bytes, config_json: str) -> None:
        """Deserialize (in the caller's thread) and stage new weights; the newest staged one wins."""
        policy = ActorPolicy.from_export(weights, config_json, expect=self.rlt)
        with self._lock:
            self._staged = policy

    def on_event(self, event: EpisodeEventPacket) -> list[Transition]:
        with self._lock:
            if not self.tracker.apply(event):
                return []
            self._plan, self._last_row = None, None  # every phase change replans on the next tick
            self._reference.reset()
            out: list[Transition] = []
            if event.type.terminal and self._recorder is not None:
                # a timeout truncates (bootstrap; the open windows are dropped), success/failure terminate
                out = self._recorder.finish(event.reward, terminal=event.type != EventType.TIMEOUT)
                self._recorder = None
            elif event.type in (EventType.START, EventType.RESET):
                self._recorder = None
            if event.type in (EventType.HANDOVER, EventType.INTERVENTION_START) and self._critical_start is None:
                self._critical_start = event.stamp
            if event.type == EventType.START:
                self._episode_start, self._critical_start = event.stamp, None
                self._path, self._diverging = None, 0  # the arm was reset: anchor on it as measured
                if self._rearm_at_start:
                    self.active, self._rearm_at_start = True, False
            self.counters["transitions"] += len(out)
            return out

    # --- the control step ---------------------------------------------------------------------------
    def tick(self, now: float) -> Step:
        with self._lock:
            return self._tick(now)

    def wants_token(self, now: float) -> bool:
        """Whether ``tick(now)`` reads a fresh RL token: a new chunk starts, or a recorded row needs the state.
        An in-process driver queries the VLA only then (actor_node takes every token as it comes)."""
        with self._lock:
            if not self.active or self.tracker.phase == Phase.IDLE:
                return False
            token, human = self._token, self.tracker.phase == Phase.INTERVENTION
            if not self._is_current(token):
                return True
            _, starts = self._due(now, human)
            if starts and (not human or now - token.stamp > self.config.max_token_age_s):
                return True
            return (self.config.record and self.tracker.phase in (Phase.RL, Phase.INTERVENTION)
                    and (self._recorder is None or self._recorder.needs_observation()))

    def _is_current(self, token: TokenPacket | None) -> bool:
        # a token belongs to this episode when the vla node tagged it so *and* its observation was taken after
        # the episode's START (one from before the reset shows the old scene, e.g. where the socket was)
        return (token is not None and token.episode_id == self.tracker.episode_id
                and token.stamp >= self._episode_start)

    def _due(self, now: float, human: bool) -> tuple[int, bool]:
        """(rows of the running plan whose control step has come, whether a new chunk starts this tick).
        Rows are counted by the clock, not by ticks: a late or skipped tick (a loaded CPU) must not leave the
        driver without targets or the recorder behind it; a clock that jumped back starts a new chunk."""
        due = 0 if self._plan is None else int(np.floor((now - self._plan_t0) / self.arm.dt + 1e-6)) + 1
        starts = (human or self._plan is None or due > len(self._plan) - self.config.lead_rows
                  or now < self._plan_t0)
        return due, starts

    def _tick(self, now: float) -> Step:
        c = self.config
        if not self.active or self.tracker.phase == Phase.IDLE:
            self._plan = None
            return Step()
        if self._q is None or abs(now - self._q_stamp) > c.max_joint_state_age_s:
            self._plan = None
            return Step(warning="joint states are stale: sending nothing (the driver holds its last goal)")
        if self._path is not None and now < self._path_t0:
            self._path = None  # the clock jumped back (a restarted simulator or driver): a new epoch
        if self._path is None and self._settled(now) is None:
            self._plan = None
            self.counters["unsettled_joint_states"] += 1
            return Step(warning="waiting for joint states stamped after the episode's START that agree with one "
                                "another (if this lasts: another publisher on the joint states topic?): sending nothing")
        if self._diverged(now):
            return self._stop_diverged()
        if self._diverging:  # no new command while the arm is not where it was commanded (nor a hold: either
            self._plan = None  # point could be far from where it really is); the driver finishes its chunk
            return Step(warning=f"the measured joint positions are {self._last_divergence:.3f} rad from the "
                                f"commanded path (more than actor.max_divergence_rad): sending nothing")
        token = self._token
        human = self.tracker.phase == Phase.INTERVENTION
        due, starts = self._due(now, human)
        step = Step()
        current = self._is_current(token)
        if current:
            self._account(token, (due - 1) if starts else due, human, step, now)  # the running plan's rows so far
        if not current or (starts and now - token.stamp > c.max_token_age_s):
            age = "none" if token is None else (f"{now - token.stamp:.3f} s old, episode {token.episode_id}, "
                                                f"observed {token.stamp - self._episode_start:+.3f} s from its start")
            return self._hold(f"RL token stale ({age}; max age {c.max_token_age_s} s, episode "
                              f"{self.tracker.episode_id}): holding position", step, now)
        if not starts:
            return step
        skip = rows_elapsed(token.stamp, now, token.step_dt)
        if human:
            if now - self._teleop_at > c.max_teleop_age_s:
                return self._hold("intervention without fresh teleop input: holding position", step, now)
            self._reference.decide(token.reference_chunk, skip)
            self._start_plan(self._teleop[None], ChunkSource.HUMAN, step, now)
        else:
            self._new_plan(token, skip, step, now)
        self._account(token, 1, human, step, now)  # the new plan's first row is this tick's
        return step

    def _account(self, token: TokenPacket, rows: int, human: bool, step: Step, now: float) -> None:
        """The running plan's rows up to ``rows`` are executed: record them (RL phase), advance ã."""
        if self._plan is None:
            return
        end = max(self._index, min(rows, len(self._plan)))
        if self.tracker.phase in (Phase.RL, Phase.INTERVENTION):
            for row in self._plan[self._index: end]:
                if self.config.record:
                    self._record(token, row, human, step, now)
                self._reference.step()
                self._last_row = row
        self._index = end

    def _new_plan(self, token: TokenPacket, skip: int, step: Step, now: float) -> None:
        """A new chunk from ``token``, whose first ``skip`` rows (the time since its observation) are past."""
        if self.tracker.phase == Phase.VLA:
            chunk = token.reference_chunk
            skip = min(skip, len(chunk) - 1)
            self.counters["latency_rows"] += skip
            return self._start_plan(chunk[skip: max(skip + 1, self.config.vla_execute_steps)], ChunkSource.VLA, step,
                                    now)
        if self._staged is not None:  # swap weights only between chunks
            self.policy, self._staged = self._staged, None
            self.counters["weight_swaps"] += 1
        if self._last_row is not None:
            self._reference.follow(self._last_row)  # ã is the plan ahead of the last target sent
        due = self._reference.due()
        ref = self._reference.decide(token.reference_chunk, skip)
        self.counters["latency_rows"] += self._reference.offset if due else 0
        if self.policy is None:  # VLA warm-up: pass the reference through
            return self._start_plan(ref, ChunkSource.VLA, step, now)
        chunk = self.policy.act(token.token, token.proprio, ref, explore=self.config.explore, rng=self._rng)
        if not np.all(np.isfinite(chunk)):
            self.counters["nonfinite_chunks"] += 1
            return self._hold("the actor produced non-finite joint targets: holding position", step, now)
        deviation = int(1000 * float(np.max(np.abs(chunk - ref))))
        self.counters["max_deviation_mrad"] = max(self.counters["max_deviation_mrad"], deviation)
        self._start_plan(chunk, ChunkSource.ACTOR, step, now)

    # --- the commanded path -------------------------------------------------------------------------
    def _start_plan(self, rows: np.ndarray, source: ChunkSource, step: Step, now: float) -> None:
        plan = self._command(rows, now)
        self._plan, self._plan_source, self._index, self._holding, self._plan_t0 = plan, source, 0, False, now
        self.counters["chunks"] += 1
        step.command = Command(plan, self.tracker.episode_id, source)

    def _command(self, rows: np.ndarray, now: float) -> np.ndarray:
        """``rows`` (row 0 is the target of step ``now``) clamped from the commanded path's previous step (the
        target the controller tracks, not the measurement, which lags it under load and which any process can
        forge; the arm as measured only where there is no path yet); the result extends the path."""
        anchor = self._settled(now) if self._path is None else self.commanded(now - self.arm.dt)
        plan, report = clamp_chunk(rows, anchor, self.arm)
        self.counters["clamped"] += report.position_clamped + report.velocity_clamped
        self._path, self._path_t0 = np.vstack([np.clip(anchor, self.arm.position_lower, self.arm.position_upper),
                                               plan]), now - self.arm.dt
        return plan

    def commanded(self, t: float) -> np.ndarray:
        """The commanded path's target for control step ``t`` (its last point once it ended)."""
        return self._path[self._path_row(t)]

    def _path_row(self, t: float) -> int:
        return int(np.clip(np.floor((t - self._path_t0) / self.arm.dt + 1e-6), 0, len(self._path) - 1))

    def _settled(self, now: float) -> np.ndarray | None:
        """The newest measured position when the samples of the last ``divergence_ticks`` steps, and since the
        episode's START (the arm was reset just before it), agree within ``max_divergence_rad`` (two publishers
        on the joint states topic disagree); None otherwise."""
        c = self.config
        start = self._episode_start if self._episode_start <= now else -np.inf  # (a clock that jumped back: no start)
        since = max(now - c.divergence_ticks * self.arm.dt, start)
        recent = [q for stamp, q in self._measured if since <= stamp <= now + c.max_joint_state_age_s]
        if not recent:
            return None
        spread = np.max(np.max(recent, axis=0) - np.min(recent, axis=0))
        return recent[-1] if spread <= c.max_divergence_rad else None

    def _diverged(self, now: float) -> bool:
        """Count the ticks on which the measured position is farther than max_divergence_rad from every
        commanded point of the last divergence_ticks steps before its stamp; True once that lasted long enough."""
        if self._path is None:
            self._diverging = 0
            return False
        c = self.config
        row = self._path_row(self._q_stamp)
        recent = self._path[max(0, row - c.divergence_ticks): row + 1]
        distance = float(np.min(np.max(np.abs(recent - self._q), axis=1)))
        self.counters["max_divergence_mrad"] = max(self.counters["max_divergence_mrad"], int(1000 * distance))
        self._diverging = self._diverging + 1 if distance > c.max_divergence_rad else 0
        self._last_divergence = distance
        return self._diverging >= c.divergence_ticks

    def _stop_diverged(self) -> Step:
        c = self.config
        self._plan, self.active, self._rearm_at_start, self._diverging = None, False, c.autostart, 0
        self.counters["divergence_stops"] += 1
        return Step(warning=(
            f"the measured joint positions stayed {self._last_divergence:.3f} rad from the commanded path (more "
            f"than actor.max_divergence_rad = {c.max_divergence_rad} rad for {c.divergence_ticks} ticks: the arm was "
            "pushed, blocked or reset, or another process publishes joint states): DEACTIVATED, sending nothing "
            "(the driver holds its last goal); "
            + ("re-arms at the next episode START" if c.autostart else "call /rlt/actor/activate to resume")))

    def _hold(self, why: str, step: Step, now: float) -> Step:
        self._plan, step.warning = None, why
        if self._holding:
            return step
        self._holding = True
        self.counters["holds"] += 1
        point = self._settled(now) if self._path is None else self.commanded(now)
        hold = self._command(point[None], now)
        step.command = Command(hold, self.tracker.episode_id, ChunkSource.HOLD)
        return step

    def _record(self, token: TokenPacket, row: np.ndarray, human: bool, step: Step, now: float) -> None:
        if self._recorder is None:
            # an actor restarted (or activated) late in the critical phase numbers its windows from the control
            # steps since the handover: they never share an index with those recorded before it came in
            late = None if self._critical_start is None else now - self._critical_start
            first = round(late / self.arm.dt) if late is not None and late > LATE_RECORDER_S else 0
            self._recorder = ChunkRecorder(self.tracker.episode_id, self.rlt.chunk_size, self.rlt.stride,
                                           first_step=first)
        self._recorder.source = (SOURCE_HUMAN if human else
                                 SOURCE_RL if self._plan_source == ChunkSource.ACTOR else SOURCE_VLA)
        if self._recorder.needs_observation():
            if self._last_row is not None:
                self._reference.follow(self._last_row)  # ã (and the previous window's ã') in step with the arm
            closed = self._recorder.observe(token.token, token.proprio, self._reference.window())
            step.transitions.extend(closed)
            self.counters["transitions"] += len(closed)
        self._recorder.act(row, human=human)


def _not_from_the_future(stamp: float, now: float, tolerance: float, what: str) -> None:
    if stamp > now + tolerance:
        raise MessageError(f"{what} stamped {stamp - now:.3f} s in the future (tolerance {tolerance} s): rejected; "
                           "are the clocks of two machines apart, or was the driver restarted?")


def load_policy_file(directory: str, rlt: RLTConfig) -> ActorPolicy:
    """The actor saved in ``directory`` as actor.safetensors + actor_config.json (what `rlt sim-train`
    writes to <out>/actor), checked against this actor's configuration."""
    from pathlib import Path

    weights, meta = Path(directory) / "actor.safetensors", Path(directory) / "actor_config.json"
    for f in (weights, meta):
        if not f.is_file():
            raise ValueError(f"actor.initial_weights: {f} does not exist (expected a folder with actor.safetensors "
                             "and actor_config.json, e.g. the actor/ folder of `rlt sim-train --out`)")
    return ActorPolicy.from_export(weights.read_bytes(), meta.read_text(), expect=rlt)
