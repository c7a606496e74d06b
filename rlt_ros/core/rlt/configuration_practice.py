"""Configuration of RLT practice on the simulated arm (`rlt sim-train`, bench/sample_efficiency.py).

The episode protocol follows the paper's human-in-the-loop setup, with a simulated operator: the VLA
drives until the critical phase starts (handover), the RL actor drives from there in chunks of C, the
operator marks success (+1, from ground truth) or the episode times out (a truncation); only critical-phase
transitions are stored. Warm-up episodes (VLA driving the critical phase too) fill the buffer first.
With ``intervene_after_s`` the operator also intervenes, as in the paper: an RL episode still running after
that long is teleoperated to its end (by the simulator's scripted demonstrator, brisker) and stored with
ã <- a_human. Measurements: docs/experiments.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlt_ros.core.config_fields import ConfigMixin, check_choice, check_float, check_int

STATE_SOURCES = ("token", "image")  # z_rl from the RL token, or the camera images through a CNN (no-token ablation)
START_MODES = ("pre_critical", "home", "curriculum")


@dataclass
class PracticeConfig(ConfigMixin):
    """Budget and protocol of one practice run."""

    # name -> (the value that means today's behaviour, what replaced it)
    REMOVED_FIELDS: ClassVar[dict] = {
        "vla_execute_steps": (30, "actor.vla_execute_steps (ActorConfig): the collector's own setting"),
    }

    episodes: int = 400  # maximum practice episodes (warm-up included)
    sim_minutes: float = 300.0  # maximum simulated time of practice, minutes (warm-up included)
    start: str = "pre_critical"  # episode start: pre_critical (just before the critical phase), home (full task), curriculum
    curriculum_episodes: int = 100  # with start=curriculum: episodes from pre_critical before switching to home
    critical_timeout_s: float = 15.0  # the operator marks failure when the critical phase lasts longer, s
    intervene_after_s: float = 0.0  # the operator takes over (teleoperates) an RL practice episode whose critical phase lasts this long, s; 0 = never (never in evaluation)
    state_source: str = "token"  # what the actor and critics read as the state: token (z_rl) or image (the camera images through a small CNN trained online: the no_token ablation)
    policy: str = "rlt"  # who drives the critical phase after warm-up: rlt (the actor) or vla (base-policy baseline)
    explore: bool = True  # add the actor's fixed-sigma noise while practising
    eval_explore: bool = False  # keep the fixed-sigma noise in evaluation episodes too (the policy as it practised)
    learner_mode: str = "interleaved"  # interleaved (deterministic: updates after every chunk) or async (learner thread)
    max_lag_updates: int = 2000  # async mode, simulation only: pause the sim while this many updates are pending
    checkpoint_every: int = 25  # episodes between checkpoints (0 = only at the end)
    eval_episodes: int = 0  # evaluation episodes after practice (no noise, nothing stored)
    seed: int = 0  # seed of the episode sequence (socket poses), exploration noise and the learner
    num_threads: int = 1  # torch CPU threads

    def __post_init__(self) -> None:
        check_int(self, "episodes", 1)
        check_float(self, "sim_minutes", 0.0, None, lo_open=True)
        check_choice(self, "start", START_MODES)
        check_int(self, "curriculum_episodes", 0)
        check_float(self, "critical_timeout_s", 0.0, None, lo_open=True)
        check_float(self, "intervene_after_s", 0.0)
        if self.intervene_after_s >= self.critical_timeout_s:
            raise ValueError(f"PracticeConfig.intervene_after_s={self.intervene_after_s} must be below "
                             f"critical_timeout_s={self.critical_timeout_s} (the operator could never take over)")
        if self.state_source == "pooled":
            raise ValueError("PracticeConfig.state_source 'pooled' was removed: the no-token ablation is now 'image' "
                             "(a small CNN on the camera images, trained online, as the paper ran it); a run "
                             "practised on the pooled prefix cannot be resumed, start it in a new output directory")
        check_choice(self, "state_source", STATE_SOURCES)
        check_choice(self, "policy", ("rlt", "vla"))
        for name in ("explore", "eval_explore"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"PracticeConfig.{name} must be a bool, got {getattr(self, name)!r}")
        check_choice(self, "learner_mode", ("interleaved", "async"))
        check_int(self, "max_lag_updates", 1)
        check_int(self, "checkpoint_every", 0)
        check_int(self, "eval_episodes", 0)
        check_int(self, "seed", 0)
        check_int(self, "num_threads", 1)

    def start_for(self, episode: int) -> str:
        """The reset mode of practice episode ``episode`` (0-based)."""
        if self.start == "curriculum":
            return "pre_critical" if episode < self.curriculum_episodes else "home"
        return self.start
