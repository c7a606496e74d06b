"""Configuration of the learned handover switch (`rlt train-switch`): a classifier on (z_rl, proprio).

The paper's operator hands control to the RL actor at the start of the critical phase; its last step
is a switch learnt from those presses, so that deployment needs no button. Saved in switch.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlt_ros.core.config_fields import ConfigMixin, check_float, check_int, check_int_tuple


@dataclass
class SwitchConfig(ConfigMixin):
    """The classifier, its training and its hysteresis gate."""

    hidden: tuple[int, ...] = (64,)  # hidden layer sizes of the MLP on (z_rl, proprio); () = logistic regression
    steps: int = 2000  # full-batch Adam steps
    lr: float = 3e-3  # Adam learning rate
    weight_decay: float = 1e-4  # Adam weight decay (L2)
    threshold: float = 0.5  # calibrated probability above which a tick counts as critical
    consecutive: int = 2  # ticks in a row above the threshold that fire the handover (once per episode)
    calibration_fraction: float = 0.2  # fraction of labelled episodes held out to calibrate (Platt scaling)
    test_fraction: float = 0.2  # fraction of labelled episodes held out for the reported metrics
    min_episodes: int = 10  # fewest labelled episodes (with an operator's handover press) to train on
    tolerance_s: float = 0.2  # a predicted handover within this of the press counts as on time [s]
    seed: int = 0  # seed of the episode split and the initial weights

    def __post_init__(self) -> None:
        check_int_tuple(self, "hidden", 1, allow_empty=True)
        check_int(self, "steps", 1)
        check_float(self, "lr", 0.0, None, lo_open=True)
        check_float(self, "weight_decay", 0.0)
        check_float(self, "threshold", 0.0, 1.0, lo_open=True, hi_open=True)
        check_int(self, "consecutive", 1)
        check_float(self, "calibration_fraction", 0.0, 0.5, lo_open=True)
        check_float(self, "test_fraction", 0.0, 0.5)
        check_int(self, "min_episodes", 4)
        check_float(self, "tolerance_s", 0.0, None, lo_open=True)
        check_int(self, "seed", 0)
