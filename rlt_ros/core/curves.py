"""Learning curves: rolling success rate and critical-phase time over episodes, and their PNG.

One place for the two plots every practice run is judged by (``rlt demo``'s run folder, ``make bench``):
the success rate over a rolling window of episodes, and the rolling median critical phase of the
successful ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def rolling(success: Sequence[bool], critical_s: Sequence[float | None], window: int = 20
            ) -> tuple[np.ndarray, np.ndarray]:
    """(success rate, median critical phase of the successes) over the last ``window`` episodes at each
    episode; the median is NaN where the window holds no success."""
    if window < 1:
        raise ValueError(f"rolling: window must be >= 1, got {window}")
    succ = np.asarray(success, float)
    crit = np.array([c if ok and c is not None else np.nan for ok, c in zip(success, critical_s)], float)
    rate = np.array([succ[max(0, i - window + 1): i + 1].mean() for i in range(len(succ))])
    med = np.full(len(crit), np.nan)
    for i in range(len(crit)):
        part = crit[max(0, i - window + 1): i + 1]
        if np.any(~np.isnan(part)):
            med[i] = np.nanmedian(part)
    return rate, med


def plot_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: str | Path, *,
                xlabel: str, title: str, window: int = 20, baseline: Mapping[str, float | None] | None = None,
                marks: Mapping[str, float] | None = None) -> Path:
    """Write a two-panel PNG: label -> (x, success rate, critical phase [s]) curves; ``baseline`` draws
    the base policy's success_rate / critical_phase_s as dashed lines, ``marks`` labelled vertical lines
    (e.g. where the evaluation without exploration noise begins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for label, (x, rate, crit) in curves.items():
        ax1.plot(x, rate, label=label)
        ax2.plot(x, crit, label=label)
    base = baseline or {}
    if base.get("success_rate") is not None:
        ax1.axhline(base["success_rate"], color="k", ls="--", label="base VLA")
    if base.get("critical_phase_s") is not None:
        ax2.axhline(base["critical_phase_s"], color="k", ls="--", label="base VLA")
    for (label, x), color in zip((marks or {}).items(), ("tab:green", "tab:red", "tab:purple", "gray")):
        for ax in (ax1, ax2):
            ax.axvline(x, color=color, ls=":", label=label)
    ax1.set(xlabel=xlabel, ylabel=f"success rate (rolling {window} episodes)", ylim=(0, 1.05))
    ax2.set(xlabel=xlabel, ylabel="critical phase of successes [s] (rolling median)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
