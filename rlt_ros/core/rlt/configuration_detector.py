"""Configuration of the learned success detector (`rlt train-detector`): a classifier on the episode's last
ticks of (z_rl, proprio), labelled by the operator's success/failure marks. Saved in detector.json.

The paper's operator marks each episode's outcome (+1 success, 0 failure); the detector learns those marks
so that the reward node can propose (``reward.detector: suggest``) or make (``auto``) them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlt_ros.core.config_fields import check_float, check_int
from rlt_ros.core.rlt.configuration_classifier import ClassifierConfig


@dataclass
class DetectorConfig(ClassifierConfig):
    """The classifier (ClassifierConfig; its samples below), and when its probability counts as a verdict."""

    steps: int = 1000  # full-batch Adam steps
    min_episodes: int = 20  # fewest episodes with an operator's success/failure mark to train on
    window: int = 5  # ticks of (z_rl, proprio) in one sample, the last one included (the node keeps as many)
    tail: int = 3  # training samples per episode: the windows ending at each of its last `tail` ticks before the mark
    negatives_before_s: float = 0.5  # windows of the critical phase ending more than this before a success mark, and all of a failure's, train as 0 (not yet a success: no early verdict); 0 = off [s]
    negative_stride: int = 4  # of those windows, every n-th tick's
    threshold: float = 0.95  # success when the calibrated p(success) exceeds this; failure (at the time limit) below 1 - this
    consecutive: int = 3  # ticks in a row above the threshold that make a success verdict (once per episode)
    min_per_class: int = 3  # fewest marked successes, and failures, among the labelled episodes
    early_s: float = 0.5  # held-out metrics: a success verdict this long before the operator's mark is early [s]

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self, "window", 1)
        check_int(self, "tail", 1)
        check_float(self, "negatives_before_s", 0.0)
        check_int(self, "negative_stride", 1)
        check_float(self, "threshold", 0.5, 1.0, hi_open=True)
        check_int(self, "consecutive", 1)
        check_int(self, "min_per_class", 1)
        check_float(self, "early_s", 0.0)


def failure_after_s(patience_s: float) -> float:
    """When the detector gives a failure verdict for an operator who gives up after ``patience_s`` of critical
    phase: half a second before, so that the verdict, not the operator's press, ends a failed episode."""
    return max(0.5, patience_s - 0.5)
