"""Prequential (test-then-train) evaluation of a recommender on a page-view stream.

Protocol, for each event ``(user, page, ts_ms)`` in time order:

1. if ``user`` has at least one earlier event in this run, ask the model for the top
   ``k`` with ``history`` = the user's earlier pages (newest last, the last
   ``history_size``) and ``exclude`` = every page already in the user's history; record
   hit@k (``page`` in the list) and the reciprocal rank (0 when absent);
2. learn the event (``x = {"ts": ts_ms}``).

Every event is learned exactly once, after it was predicted: the scores are honest
estimates of what a live scorer would have served.

Periodic retraining (``retrain_every=N``, for models with a batch layer such as
:class:`~online_model.models.hybrid.Hybrid`): before the events numbered N, 2N, 3N, ... are
scored, the batch layer is refit on exactly the events before them and swapped in, as a
batch job that reads the log up to "now" would be; the online part keeps learning every
event once. A batch layer is thus never fit on an event it is then judged on.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from online_model.base import Recommender
from online_model.errors import ModelError
from online_model.quality import HitCounts, rank_of

logger = logging.getLogger(__name__)


@runtime_checkable
class Retrainable(Protocol):
    """A model with a batch layer that can be refit on a prefix of the log."""

    retrain_every: int

    def fit_batch_layer(self, events: Sequence[Sequence[Any]], position: Any = None) -> Any: ...

    def set_batch_layer(self, layer: Any) -> None: ...


def retrain_cadence(model: Recommender, retrain_every: int | None) -> int:
    """Events between refits for ``model``: ``retrain_every``, else the model's own
    default; 0 for a model without a batch layer (asking one to retrain is an error)."""
    if not isinstance(model, Retrainable):
        if retrain_every:
            raise ModelError(f"{type(model).__name__} has no batch layer to retrain")
        return 0
    cadence = model.retrain_every if retrain_every is None else retrain_every
    if cadence < 0:
        raise ModelError(f"retrain_every must be >= 0 events, got {cadence}")
    return cadence


class PrequentialEvaluator:
    """Incremental test-then-train evaluation; feed events with :meth:`update`.

    Parameters
    ----------
    model
        The recommender to evaluate; it learns every event.
    k
        List length.
    history_size
        Newest pages passed as ``history``.
    model_name, params
        Echoed in the report.
    retrain_every
        Refit the model's batch layer every this many events (see the module docstring);
        ``None`` takes the model's own default, 0 never refits.

    Examples
    --------
    >>> from online_model.models.popularity import DecayedPopularity
    >>> ev = PrequentialEvaluator(DecayedPopularity(half_life=0), k=1)
    >>> for user, page, ts in [("a", "p1", 1), ("b", "p1", 2), ("a", "p2", 3), ("b", "p2", 4)]:
    ...     _ = ev.update(user, page, ts)
    >>> r = ev.report()
    >>> # a at ts=3 gets nothing (p1 excluded, p2 unseen); b at ts=4 gets p2: a hit
    >>> r["n_scored"], r["hit@1"], r["mrr@1"]
    (2, 0.5, 0.5)
    """

    def __init__(
        self,
        model: Recommender,
        k: int = 10,
        history_size: int = 50,
        model_name: str | None = None,
        params: dict[str, Any] | None = None,
        retrain_every: int | None = None,
    ) -> None:
        self.model = model
        self.retrain_every = retrain_cadence(model, retrain_every)
        self.n_refits = 0
        self._log: list[tuple[Hashable, Hashable, int | None]] = []
        self.k = k
        self.history_size = history_size
        self.model_name = model_name or type(model).__name__
        self.params = dict(params or {})
        self.n_events = 0
        self.quality = HitCounts()
        self._recent: dict[Hashable, deque[Hashable]] = {}
        self._seen: dict[Hashable, set[Hashable]] = {}
        self._pages_seen: set[Hashable] = set()
        self._pages_recommended: set[Hashable] = set()
        self._elapsed = 0.0

    def remember(self, user: Hashable, pages: Sequence[Hashable]) -> None:
        """Start ``user`` with ``pages`` (oldest first) already viewed, unscored.

        For a model that learned the start of a log in bulk: the rest is scored with the
        history and exclusions it would have had if every event had gone through here.
        """
        self._recent[user] = deque(pages, maxlen=self.history_size)
        self._seen[user] = set(pages)
        self._pages_seen.update(pages)

    def update(self, user: Hashable, page: Hashable, ts_ms: int | None = None) -> int | None:
        """Score then learn one event; returns the 1-based rank of ``page`` (or None)."""
        start = time.perf_counter()
        if self.retrain_every:
            if self.n_events and self.n_events % self.retrain_every == 0:
                self._refit()
            self._log.append((user, page, ts_ms))
        rank = None
        recent = self._recent.get(user)
        if recent is None:
            recent = self._recent[user] = deque(maxlen=self.history_size)
            seen = self._seen[user] = set()
        else:
            seen = self._seen[user]
            recs = [
                item
                for item, _ in self.model.recommend(user, k=self.k, history=recent, exclude=seen)
            ]
            self._pages_recommended.update(recs)
            rank = rank_of(page, recs)
            self.quality.add(rank)
        self.model.learn_one(user, page, x=None if ts_ms is None else {"ts": ts_ms})
        recent.append(page)
        seen.add(page)
        self._pages_seen.add(page)
        self.n_events += 1
        self._elapsed += time.perf_counter() - start
        return rank

    def _refit(self) -> None:
        """Refit the batch layer on every event so far (none of the events to come)."""
        model: Any = self.model
        model.set_batch_layer(model.fit_batch_layer(self._log, position=len(self._log)))
        self.n_refits += 1

    def report(self) -> dict[str, Any]:
        """Metrics so far: hit@k, mrr@k, coverage@k, counts, throughput, model, params, k."""
        k = self.k
        return {
            **self.quality.report(k),
            f"coverage@{k}": (
                len(self._pages_recommended) / len(self._pages_seen) if self._pages_seen else 0.0
            ),
            "n_events": self.n_events,
            "n_scored": self.quality.judged,
            "events_per_s": self.n_events / self._elapsed if self._elapsed else 0.0,
            "model": self.model_name,
            "params": self.params,
            "k": k,
            **(
                {"retrain_every": self.retrain_every, "n_refits": self.n_refits}
                if self.retrain_every
                else {}
            ),
        }


def evaluate(
    model: Recommender,
    events: Iterable[Sequence[Any]],
    k: int = 10,
    *,
    history_size: int = 50,
    model_name: str | None = None,
    params: dict[str, Any] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    progress_every: int = 100_000,
    retrain_every: int | None = None,
) -> dict[str, Any]:
    """Run the prequential protocol over time-ordered ``(user, page, ts_ms)`` events.

    ``progress`` (if given) receives the running report every ``progress_every`` events.
    Extra tuple fields (e.g. a session id) are ignored. ``retrain_every``: see
    :class:`PrequentialEvaluator`.
    """
    ev = PrequentialEvaluator(model, k, history_size, model_name, params, retrain_every)
    for event in events:
        ev.update(event[0], event[1], event[2])
        if progress is not None and ev.n_events % progress_every == 0:
            progress(ev.report())
    report = ev.report()
    logger.info(
        "prequential done model=%s n_events=%d hit=%.4f",
        report["model"],
        report["n_events"],
        report[f"hit@{k}"],
    )
    return report
