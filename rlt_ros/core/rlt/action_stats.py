"""The action scale of the actor-critic: per-joint mean and std of the demonstrations' critical phase.

The normaliser's per-joint action std sets the exploration noise (sigma, in normalised units) and the price
beta puts on leaving the VLA's action, joint by joint. Fitted on the learner's warm-up alone (~5 episodes),
it is mostly the spread of ~5 socket positions, and varied 3-fold on the joint that aims the plug sideways
between seeds of the same run (experiments 2.20). ``rlt train-token`` therefore measures it on the
demonstrations the token is trained on (every demo's critical phase, tens of episodes) and stores it in
token_meta.json under ``action_stats``; the learner takes it from the token folder it runs. Only demos that
mark the critical phase count (``rlt record-demos`` does; a bag with /rlt/events' critical_phase_start); a
token without them leaves the learner fitting its action scale on the warm-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

META_KEY = "action_stats"


@dataclass(frozen=True)
class ActionStats:
    """Per-joint mean and std [A] of absolute joint targets, from ``episodes`` demos (``rows`` steps)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    episodes: int
    rows: int
    joint_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        mean, std = np.asarray(self.mean, float), np.asarray(self.std, float)
        if mean.ndim != 1 or mean.shape != std.shape or len(mean) == 0:
            raise ValueError(f"action statistics: mean {mean.shape} and std {std.shape} must be the same [A], A >= 1")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or bool((std <= 0).any()):
            raise ValueError("action statistics: mean and std must be finite and every std > 0")
        if self.joint_names and len(self.joint_names) != len(mean):
            raise ValueError(f"action statistics: {len(self.joint_names)} joint names for {len(mean)} joints")

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "episodes": self.episodes, "rows": self.rows,
                "joint_names": list(self.joint_names)}

    @classmethod
    def from_dict(cls, d: dict) -> ActionStats:
        return cls(mean=tuple(float(x) for x in d["mean"]), std=tuple(float(x) for x in d["std"]),
                   episodes=int(d["episodes"]), rows=int(d["rows"]),
                   joint_names=tuple(str(s) for s in d.get("joint_names", ())))

    def check_arm(self, action_dim: int, joint_names: tuple[str, ...] | list[str] = ()) -> None:
        """Raise when these statistics are of another arm (joint count, or names where both are known)."""
        if len(self.mean) != action_dim:
            raise ValueError(f"the RL token's action statistics have {len(self.mean)} joints but the arm has "
                             f"{action_dim}: recompute them from this arm's demonstrations with "
                             "`rlt train-token --stats-only --demos DEMOS --out TOKEN_DIR`")
        if self.joint_names and joint_names and tuple(joint_names) != self.joint_names:
            raise ValueError(f"the RL token's action statistics are of joints {list(self.joint_names)} but the arm's "
                             f"are {list(joint_names)}")


def demo_action_stats(episodes: list, min_std: float = 1e-6) -> ActionStats | None:
    """ActionStats of the critical phase of ``episodes`` (DemoEpisode: ``actions`` [T, A], ``critical_start``:
    the first step of the critical phase, None where the demo marks none). Demos that mark none are left out
    (their approach would inflate the scale many times); None when no demo marks it."""
    rows = [ep.actions[ep.critical_start:] for ep in episodes if ep.critical_start is not None]
    if not rows:
        return None
    a = np.concatenate(rows).astype(np.float64)
    names = next((tuple(ep.joint_names) for ep in episodes if ep.joint_names), ())
    return ActionStats(mean=tuple(a.mean(0).tolist()), std=tuple(np.maximum(a.std(0), min_std).tolist()),
                       episodes=len(rows), rows=len(a), joint_names=names)


def load_action_stats(token_dir: str | Path) -> ActionStats | None:
    """The action statistics stored with the RL token at ``token_dir`` (None for a token trained without them)."""
    meta = Path(token_dir) / "token_meta.json"
    if not meta.is_file():
        return None
    d = json.loads(meta.read_text()).get(META_KEY)
    return None if d is None else ActionStats.from_dict(d)


def store_action_stats(token_dir: str | Path, stats: ActionStats) -> None:
    """Write ``stats`` into token_meta.json of ``token_dir`` (the other entries are kept)."""
    meta = Path(token_dir) / "token_meta.json"
    d = json.loads(meta.read_text()) if meta.is_file() else {}
    d[META_KEY] = stats.to_dict()
    meta.write_text(json.dumps(d, indent=2) + "\n")
