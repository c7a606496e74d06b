"""What the configurations of the learned handover switch and success detector share: the classifier on
(z_rl, proprio) and its training (token_classifier.py). Each subclass owns its defaults and its own fields."""

from __future__ import annotations

from dataclasses import dataclass

from rlt_ros.core.config_fields import ConfigMixin, check_float, check_int, check_int_tuple


@dataclass
class ClassifierConfig(ConfigMixin):
    """The MLP, its full-batch training, the episode split and the seed."""

    hidden: tuple[int, ...] = (64,)  # hidden layer sizes of the MLP; () = logistic regression
    steps: int = 2000  # full-batch Adam steps
    lr: float = 3e-3  # Adam learning rate
    weight_decay: float = 1e-4  # Adam weight decay (L2)
    calibration_fraction: float = 0.2  # fraction of labelled episodes held out to calibrate (Platt scaling)
    test_fraction: float = 0.2  # fraction of labelled episodes held out for the reported metrics
    min_episodes: int = 10  # fewest labelled episodes to train on
    seed: int = 0  # seed of the episode split and the initial weights

    def __post_init__(self) -> None:
        check_int_tuple(self, "hidden", 1, allow_empty=True)
        check_int(self, "steps", 1)
        check_float(self, "lr", 0.0, None, lo_open=True)
        check_float(self, "weight_decay", 0.0)
        check_float(self, "calibration_fraction", 0.0, 0.5, lo_open=True)
        check_float(self, "test_fraction", 0.0, 0.5)
        check_int(self, "min_episodes", 4)
        check_int(self, "seed", 0)
