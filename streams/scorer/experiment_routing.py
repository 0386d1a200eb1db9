"""What a scorer does with an experiment: route users to arms and follow the record.

:class:`ArmRouting` is what the scoring core reads once per batch (None outside an
experiment, so the hot path without one is the one it always was). The
:class:`ExperimentFollower` runs on the scorer's poll thread: it reads the record and the
``serving`` pointer, keeps the challenger's model hot-swapped in its own
:class:`~streams.scorer.model_holder.ModelHolder`, adds this scorer's judged views to the
experiment's totals, and asks the gate when ``--auto`` is on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.experiment.assignment import ARMS, arm_of
from streams.experiment.gate import figures, judge
from streams.experiment.record import Experiment
from streams.experiment.statistics import ArmCounts
from streams.experiment.store import ExperimentStore
from streams.scorer.model_holder import ModelHolder
from streams.state.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmRouting:
    """A running experiment whose challenger has a model: how to split a batch."""

    experiment: Experiment
    challenger: ModelHolder

    @property
    def shadow(self) -> bool:
        return self.experiment.shadow

    def arm(self, user: str) -> str:
        return arm_of(user, self.experiment.id, self.experiment.share)


class ExperimentFollower:
    """One scorer's view of the experiments of its champion namespace."""

    def __init__(
        self,
        experiments: ExperimentStore,
        store_for: Callable[[str], SnapshotStore],
        k: int,
    ) -> None:
        self.experiments = experiments
        self.store_for = store_for
        self.k = k
        #: The namespace served as champion (changes when a challenger is promoted).
        self.serving = experiments.namespace
        self.experiment: Experiment | None = None
        self.challenger: ModelHolder | None = None
        self._challenger_store: SnapshotStore | None = None
        self.routing: ArmRouting | None = None
        #: Figures of the running experiment over every scorer, as of the last poll.
        self.figures: dict[str, Any] | None = None
        self.decisions = 0
        self._pending: dict[str, ArmCounts] = {}
        self._lock = threading.Lock()

    # -- the event loop's side ----------------------------------------------------------
    def count(self, arms: dict[str, ArmCounts]) -> None:
        """Queue a batch's judged views for the next flush to Redis."""
        with self._lock:
            for arm, counts in arms.items():
                self._pending.setdefault(arm, ArmCounts()).merge(counts)

    # -- the poll thread's side ---------------------------------------------------------
    def poll(self) -> tuple[str, ModelHolder | None]:
        """Follow the record; return (namespace to serve as champion, the holder that
        already holds its model when it was this scorer's challenger, else None)."""
        serving, experiment = self.experiments.read()
        adopted: ModelHolder | None = None
        if serving != self.serving:
            log.warning("experiment serving_changed from=%s to=%s", self.serving, serving)
            store = self._challenger_store
            if self.challenger is not None and store is not None and store.model_name == serving:
                adopted = self.challenger
            self.serving = serving
        self._follow(experiment)
        if self.experiment is not None:
            self._flush_and_judge(self.experiment)
        return serving, adopted

    def _follow(self, experiment: Experiment | None) -> None:
        if experiment is None or (self.experiment and experiment.id != self.experiment.id):
            if self.experiment is not None:
                self._flush(self.experiment)  # the last views of the one that ended
                log.info("experiment left id=%s", self.experiment.id)
            self.experiment = None
            self.challenger = None
            self._challenger_store = None
            self.routing = None
            self.figures = None
        if experiment is None:
            return
        if self.experiment is None:
            log.info("experiment joined id=%s challenger=%s", experiment.id, experiment.challenger)
            self.experiment = experiment
            self.challenger = ModelHolder()
            self._challenger_store = self.store_for(experiment.challenger)
        assert self.challenger is not None and self._challenger_store is not None
        self.challenger.refresh(self._challenger_store)
        # Until the challenger has a snapshot there is nothing to compare: serve as usual.
        if not self.challenger.current.is_fallback and self.routing is None:
            self.routing = ArmRouting(experiment, self.challenger)

    def _flush(self, experiment: Experiment) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if any(c.judged for c in pending.values()):
            try:
                self.experiments.add_counts(experiment.id, pending)
            except Exception:
                with self._lock:  # keep them for the next flush
                    for arm, counts in pending.items():
                        self._pending.setdefault(arm, ArmCounts()).merge(counts)
                raise

    def _flush_and_judge(self, experiment: Experiment) -> None:
        self._flush(experiment)
        arms = self.experiments.counts(experiment.id)
        if not experiment.auto or self.routing is None:
            self.figures = figures(experiment, arms, self.k)
            return
        verdict = judge(experiment, arms, self.k)
        self.figures = verdict.figures
        if verdict.action is not None:
            done = self.experiments.finish(
                experiment, verdict.action, verdict.reason, verdict.figures, by="gate"
            )
            if done is not None:
                self.decisions += 1

    def arm_figure(self, arm: str, name: str) -> float:
        """One per-arm figure for /metrics (NaN outside an experiment)."""
        if self.figures is None or arm not in ARMS:
            return float("nan")
        return float(self.figures[arm][name])

    def difference_figure(self, metric: str, part: str) -> float:
        """``difference``, ``ci95_low``... of ``metric`` (``hit@10``) for /metrics."""
        if self.figures is None:
            return float("nan")
        diff = self.figures[f"difference_{metric}"]
        if part == "difference":
            return float(diff["difference"])
        interval, side = part.rsplit("_", 1)
        return float(diff[interval][0 if side == "low" else 1])
