"""Retraining the learned handover switch and success detector during practice, on the learner's machine.

learner_node (``learner.marks_every``) hands a ``MarksTrainer`` the token stream and the episode events it
hears. They are recorded into the run folder as token bags (``<dir>/tokens/NNNN/``, the data `rlt
train-switch` and `rlt train-detector` read); a bag closes once it holds ``every`` episodes the operator
marked, and then both classifiers are trained again on every closed bag and saved as the next version
(``<dir>/switch/vNNNN/``, ``<dir>/detector/vNNNN/``) with the metrics of their held-out episodes. A
classifier that cannot be trained yet (too few presses, one outcome only) is reported and skipped. A bag
left open by a crash has no metadata.yaml and is not read (its labels are lost, never a transition).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlt_ros.core.data.token_bags import TokenBagWriter, read_labelled_episodes
from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType, TokenPacket
from rlt_ros.core.rlt.configuration_detector import DetectorConfig
from rlt_ros.core.rlt.configuration_switch import SwitchConfig
from rlt_ros.core.rlt.detector import train_detector
from rlt_ros.core.rlt.switch import train_switch
from rlt_ros.core.rlt.token_classifier import ClassifierError

KINDS = ("switch", "detector")
# the held-out metrics published per kind (on /rlt/learner_stats as <kind>_<name>)
METRICS = {"switch": ("on_time", "outside_critical", "late"),
           "detector": ("accuracy", "precision", "recall", "false_success", "online_false_success")}
_VERSION = re.compile(r"v(\d{4,})")


@dataclass
class MarksUpdate:
    """One retraining: the version, the classifiers trained (kind -> model), why the others were not, and
    their held-out metrics as flat statistics (``<kind>_<metric>``, ``<kind>_test_episodes``)."""

    version: int
    models: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


class MarksTrainer:
    """Records the token stream and events into rolling token bags and retrains both classifiers on them."""

    def __init__(self, directory: str | Path, identity: dict, every: int, switch_cfg: SwitchConfig | None = None,
                 detector_cfg: DetectorConfig | None = None):
        if every < 1:
            raise ValueError(f"MarksTrainer: every must be >= 1 marked episodes, got {every}")
        self.directory, self.identity, self.every = Path(directory), dict(identity), int(every)
        self.cfgs = {"switch": switch_cfg or SwitchConfig(), "detector": detector_cfg or DetectorConfig()}
        self.bags = self.directory / "tokens"
        self.bags.mkdir(parents=True, exist_ok=True)
        self.version = max((int(m.group(1)) for kind in KINDS if (self.directory / kind).is_dir()
                            for p in (self.directory / kind).iterdir() if (m := _VERSION.fullmatch(p.name))), default=0)
        self._next_bag = 1 + max((int(p.name) for p in self.bags.iterdir() if p.name.isdigit()), default=0)
        self.writer: TokenBagWriter | None = None
        self.marked = 0  # operator-marked episodes in the open bag

    def _open(self) -> TokenBagWriter:
        if self.writer is None:
            self.writer = TokenBagWriter(self.bags / f"{self._next_bag:04d}")
            self._next_bag += 1
        return self.writer

    def write_token(self, packet: TokenPacket) -> None:
        """Record it without its reference chunk, which neither classifier reads (a stamp before 1970 cannot be
        stored in a bag and is dropped)."""
        if packet.stamp >= 0:
            self._open().write_token(replace(packet, reference_chunk=packet.reference_chunk[:0]))

    def write_event(self, event: EpisodeEventPacket) -> bool:
        """Record it; True when the open bag now holds ``every`` marked episodes (time to ``roll`` and ``train``)."""
        if event.stamp < 0:
            return False
        self._open().write_event(event)
        if event.source == EventSource.HUMAN and event.type in (EventType.SUCCESS, EventType.FAILURE):
            self.marked += 1
        return self.marked >= self.every

    def roll(self) -> None:
        """Close the open bag (readable from now on); the next token or event opens a new one."""
        if self.writer is not None:
            self.writer.close()
        self.writer, self.marked = None, 0

    def closed_bags(self) -> list[Path]:
        return sorted(p for p in self.bags.iterdir() if (p / "metadata.yaml").is_file())

    def train(self) -> MarksUpdate:
        """Both classifiers on every closed bag, saved as the next version (only when at least one trains)."""
        bags = self.closed_bags()
        episodes = read_labelled_episodes(bags) if bags else []
        update = MarksUpdate(self.version + 1)
        trainers = {"switch": train_switch, "detector": train_detector}
        for kind in KINDS:
            try:
                update.models[kind] = trainers[kind](episodes, self.cfgs[kind], self.identity)
            except ClassifierError as err:
                update.errors[kind] = str(err)
        if not update.models:
            return update
        self.version = update.version
        for kind, model in update.models.items():
            model.save(self.directory / kind / f"v{update.version:04d}")
            test = model.report.get("test", {})
            update.metrics[f"{kind}_test_episodes"] = float(test.get("episodes", 0))
            update.metrics.update({f"{kind}_{name}": float(test[name]) for name in METRICS[kind]
                                   if test.get(name) is not None})
        update.metrics["marks_version"] = float(update.version)
        return update

    def close(self) -> None:
        self.roll()
