"""Configuration of the scripted, human-like expert (:class:`rlt_ros.core.sim.expert.ScriptedExpert`)."""

from __future__ import annotations

from dataclasses import dataclass

from rlt_ros.core.config_fields import ConfigMixin


@dataclass
class ExpertConfig(ConfigMixin):
    """How the scripted demonstrator moves: fast and coarse in free space, slow and cautious near the socket."""

    approach_speed_mps: float = 0.12  # peak tip speed while approaching the hover point, m/s
    hover_height_mm: float = 30.0  # tip height above the socket mouth at the end of the approach, mm
    hover_descent_speed_mps: float = 0.015  # tip speed from the hover point down to the align height, m/s
    align_height_mm: float = 5.0  # tip height above the mouth where the expert pauses and re-aims, mm
    descend_speed_mps: float = 0.003  # tip speed from the align height to the mouth, m/s
    insert_speed_mps: float = 0.005  # tip speed while inserting, m/s
    push_mm: float = 2.5  # target at most this far below the measured tip while pushing (limits force), mm
    coarse_noise_mm: float = 1.5  # std of the socket-position estimate during the approach, mm
    fine_noise_mm: float = 0.7  # std of the estimate after the close look at the align height, mm
    yaw_noise_deg: float = 1.0  # std of the socket-yaw estimate, degrees
    pause_min_s: float = 0.3  # shortest hesitation pause, s
    pause_max_s: float = 0.8  # longest hesitation pause, s
    jam_time_s: float = 0.5  # no insertion progress for this long while touching -> lift and probe elsewhere, s
    search_step_mm: float = 0.5  # radius increment of the probing spiral, mm
    speed_variation: float = 0.2  # per-episode speed scale drawn in [1 - v, 1 + v]
    seed: int = 0  # seed of the expert's own noise (reseeded from the episode seed by run_episode)

    def __post_init__(self) -> None:
        positive = ("approach_speed_mps", "hover_descent_speed_mps", "descend_speed_mps", "insert_speed_mps",
                    "push_mm", "jam_time_s", "search_step_mm")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"ExpertConfig.{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.align_height_mm < self.hover_height_mm:
            raise ValueError("ExpertConfig: need 0 < align_height_mm < hover_height_mm")
        for name in ("coarse_noise_mm", "fine_noise_mm", "yaw_noise_deg"):
            if getattr(self, name) < 0:
                raise ValueError(f"ExpertConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.pause_min_s <= self.pause_max_s:
            raise ValueError("ExpertConfig: need 0 <= pause_min_s <= pause_max_s")
        if not 0 <= self.speed_variation < 1:
            raise ValueError(f"ExpertConfig.speed_variation must be in [0, 1), got {self.speed_variation}")


def teleoperator_config(seed: int = 0) -> ExpertConfig:
    """The simulated operator's teleoperation when it intervenes (``rlt sim-train --intervene-after``): the
    demonstrator's moves without its hesitations, twice as fast near the socket. From a plug pressed on the
    socket's top face 2.5 mm off the mouth (12 socket poses): inserted 12/12, median 3.4 s, max 3.7 s; the
    demonstrator's own configuration needs 7.4 s (max 8.5 s), too slow to finish within a practice timeout."""
    return ExpertConfig(pause_min_s=0.05, pause_max_s=0.1, descend_speed_mps=0.006, insert_speed_mps=0.01,
                        align_height_mm=3.0, speed_variation=0.0, seed=seed)
