"""Replay: train a fresh model on a time range of the page-view log, and judge it.

The log is read through :class:`RangeReader` (a small protocol; :mod:`streams.io.range_reader`
adapts confluent-kafka to it), so this module has no Kafka import and unit tests pass
plain lists of :class:`LogRecord`.

Steps:

1. :func:`collect` keeps the records whose *record* timestamp lies in ``[start, end)``
   (the reader already bounds by it; checking again keeps fakes honest), decodes them, and
   stable-sorts them by the page view's own ``ts``, ties broken by (partition, offset). The
   order depends only on the log, so two replays of one range learn the same sequence.
2. :func:`train` runs a FRESH model over them with the prequential protocol
   (:class:`~online_model.evaluation.PrequentialEvaluator`): every event is first predicted,
   then learned. Same events + same class/params = same model = same ``content_hash``.
3. :func:`build_snapshot` wraps the model as a snapshot of origin ``"replay"`` whose
   ``meta.extra`` says exactly what it was trained on.
4. :func:`judge` (the ``--gate``) compares the candidate with the model currently served.

Gate: like for like
-------------------
The current model is compared as a *fresh instance of its class and parameters*
(``current.clone()``), trained prequentially on the same events, not as the frozen (or
warm-continued) snapshot. A snapshot has usually learned the very events of the range
(the trainer reads the same topic), so scoring it on them would grade it on answers it
has already seen, and a frozen model is also denied the learning the candidate gets.
Both sides seeing identical events under the identical protocol makes the comparison one
of model configurations, which is what a replay changes. What it does not measure is the
advantage of the history the current snapshot accumulated before the range: replay over a
range long enough for the models to warm up. The candidate must *beat* the current one
(strictly greater metric); with no current snapshot there is nothing to beat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from online_model.base import Recommender
from online_model.errors import ConfigurationError, StreamrecError
from online_model.evaluation import PrequentialEvaluator
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.records import LogRecord
from streams.time_range import TimeRange

logger = logging.getLogger(__name__)

ORIGIN = "replay"


class RangeReader(Protocol):
    """What replay needs from a log (Kafka, or a list in tests)."""

    topic: str

    def partitions(self) -> list[int]:
        """Partition ids of the topic."""

    def read(self, time_range: TimeRange) -> Iterable[LogRecord]:
        """Every record whose record timestamp is in ``time_range`` (any order)."""


@dataclass(frozen=True)
class ReplayEvent:
    """A decoded page view with its place in the log."""

    ts_ms: int
    partition: int
    offset: int
    user: str
    page: str


@dataclass
class ReplayLog:
    """The events of a range in learning order, and where in the log they came from."""

    topic: str
    time_range: TimeRange
    partitions: list[int]
    events: list[ReplayEvent] = field(default_factory=list)
    #: partition -> [first offset, last offset] of the records in range (inclusive)
    offset_ranges: dict[int, list[int]] = field(default_factory=dict)
    #: partition -> records in range (the span above may hold records outside the range)
    counts: dict[int, int] = field(default_factory=dict)
    n_read: int = 0
    n_bad: int = 0

    def summary(self) -> dict[str, Any]:
        ts = [e.ts_ms for e in self.events]
        return {
            "topic": self.topic,
            "partitions": list(self.partitions),
            "offset_ranges": {str(p): r for p, r in sorted(self.offset_ranges.items())},
            "records_per_partition": {str(p): n for p, n in sorted(self.counts.items())},
            "time_range": self.time_range.to_dict(),
            "event_time": {"min_ms": min(ts) if ts else None, "max_ms": max(ts) if ts else None},
            "records_in_range": self.n_read,
            "bad_records": self.n_bad,
        }


Decode = Callable[[bytes | None], dict[str, Any]]


def collect(
    records: Iterable[LogRecord],
    decode: Decode,
    time_range: TimeRange,
    topic: str,
    partitions: list[int],
) -> ReplayLog:
    """Keep, decode and order the records of ``time_range`` (see the module docstring).

    A record that does not decode (a :class:`StreamrecError` from ``decode``) is counted in
    ``n_bad`` and skipped, as the trainer skips it.
    """
    log = ReplayLog(topic, time_range, sorted(partitions))
    for record in records:
        if record.timestamp_ms not in time_range:
            continue
        log.n_read += 1
        log.counts[record.partition] = log.counts.get(record.partition, 0) + 1
        span = log.offset_ranges.setdefault(record.partition, [record.offset, record.offset])
        span[0] = min(span[0], record.offset)
        span[1] = max(span[1], record.offset)
        try:
            view = decode(record.value)
        except StreamrecError as exc:
            log.n_bad += 1
            logger.debug(
                "replay bad record partition=%d offset=%d error=%r",
                record.partition,
                record.offset,
                str(exc),
            )
            continue
        log.events.append(
            ReplayEvent(
                int(view["ts"]),
                record.partition,
                record.offset,
                str(view["user_id"]),
                str(view["page_id"]),
            )
        )
    log.events.sort(key=lambda e: (e.ts_ms, e.partition, e.offset))
    return log


def numeric_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The numbers of an evaluator report that describe quality and size (no timings)."""
    return {
        k: float(v)
        for k, v in report.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "events_per_s"
    }


def train(
    model: Recommender,
    events: Iterable[ReplayEvent],
    k: int = 10,
    history_size: int = 50,
    model_name: str | None = None,
    params: dict[str, Any] | None = None,
    on_event: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Prequential pass of ``model`` over ``events``; the model learns each; returns the report."""
    evaluator = PrequentialEvaluator(model, k, history_size, model_name, params)
    for event in events:
        evaluator.update(event.user, event.page, event.ts_ms)
        if on_event is not None:
            on_event()
    return evaluator.report()


def build_snapshot(
    model: Recommender,
    log: ReplayLog,
    report: dict[str, Any],
    model_name: str,
    spec: dict[str, Any],
) -> Snapshot:
    """A snapshot of origin ``"replay"`` recording what the model was trained on.

    ``offsets`` follow the trainer's convention (next offset after the last one learned);
    ``extra`` holds the topic, partitions, offset ranges, time ranges, the model spec and
    the metrics.
    """
    metrics = numeric_metrics(report)
    offsets = {log.topic: {p: r[1] + 1 for p, r in log.offset_ranges.items()}}
    meta = SnapshotMeta(
        model_name=model_name,
        created_at=time.time(),
        events_seen=model.n_events_learned,
        origin=ORIGIN,
        offsets=offsets if log.offset_ranges else {},
        metrics=metrics,
        extra={"replay": {**log.summary(), "model": spec, "metrics": metrics}},
    )
    return Snapshot(meta, model, {"bad_events": log.n_bad})


@dataclass(frozen=True)
class Verdict:
    """Outcome of the gate: the metric for both models and whether the candidate wins."""

    metric: str
    candidate: float
    current: float | None
    current_version: int | None
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "candidate": self.candidate,
            "current": self.current,
            "current_version": self.current_version,
            "passed": self.passed,
        }

    def message(self) -> str:
        if self.current is None:
            return f"gate {self.metric}: no current model to beat; candidate passes"
        word = "beats" if self.passed else "does not beat"
        return (
            f"gate {self.metric}: candidate {self.candidate:.4f} {word} current "
            f"version {self.current_version} {self.current:.4f} on the same events"
        )


GATE_METRICS = ("hit", "mrr", "coverage")


def check_gate_metric(metric: str, k: int) -> None:
    """Refuse a ``--gate`` the evaluator does not report, before any work is done.

    >>> check_gate_metric("hit@10", 10)
    >>> check_gate_metric("hit@5", 10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    online_model.errors.ConfigurationError: --gate 'hit@5' is not a metric of this replay; ...
    """
    if metric not in {f"{name}@{k}" for name in GATE_METRICS}:
        choices = ", ".join(f"{name}@{k}" for name in GATE_METRICS)
        raise ConfigurationError(
            f"--gate {metric!r} is not a metric of this replay; choose one of {choices}"
        )


def judge(
    metric: str,
    candidate_report: dict[str, Any],
    current: Recommender | None,
    current_version: int | None,
    events: list[ReplayEvent],
    k: int,
    history_size: int,
    on_event: Callable[[], None] | None = None,
) -> Verdict:
    """Compare the candidate with a fresh clone of ``current`` on ``events`` (module docstring)."""
    check_gate_metric(metric, k)
    score = float(candidate_report[metric])
    if current is None:
        return Verdict(metric, score, None, None, True)
    rival = current.clone()
    rival_report = train(rival, events, k, history_size, on_event=on_event)
    rival_score = float(rival_report[metric])
    return Verdict(metric, score, rival_score, current_version, score > rival_score)
