"""Configuration of the learned handover switch (`rlt train-switch`): a classifier on (z_rl, proprio).

The paper's operator hands control to the RL actor at the start of the critical phase; its last step
is a switch learnt from those presses, so that deployment needs no button. Saved in switch.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlt_ros.core.config_fields import check_float, check_int
from rlt_ros.core.rlt.configuration_classifier import ClassifierConfig


@dataclass
class SwitchConfig(ClassifierConfig):
    """The classifier (one tick's (z_rl, proprio); ClassifierConfig), its training and its hysteresis gate."""

    threshold: float = 0.5  # calibrated probability above which a tick counts as critical
    consecutive: int = 2  # ticks in a row above the threshold that fire the handover (once per episode)
    tolerance_s: float = 0.2  # a predicted handover within this of the press counts as on time [s]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float(self, "threshold", 0.0, 1.0, lo_open=True, hi_open=True)
        check_int(self, "consecutive", 1)
        check_float(self, "tolerance_s", 0.0, None, lo_open=True)
