"""One retrain: read the log on Spark, learn it in bulk, learn its tail online, judge it.

1. The log (a Kafka topic over ``[--from, --to)`` by record time, everything up to the job's
   start by default; or a CSV/JSONL file) is read and numbered in learning order by
   :mod:`streams.retrain.job`.
2. All but the newest ``tail`` events (the *prefix*) are aggregated into co-visitation
   statistics (pairs counted on the executors), from which the driver builds the model
   (:func:`online_model.covisit_batch.build_covisitation`).
3. The driver learns the tail online, test-then-train, with the users' earlier pages as
   their history (so the scores are those a replay gives on those events). This learns the
   popularity weight m, which is sequential, and gives the metrics of the snapshot.
4. ``--gate``: the current snapshot's class and parameters, built the same way from the
   same prefix (or, for a model that cannot learn in bulk, learning the prefix online on the
   driver), is scored on the same tail; the candidate must do strictly better.

The result is a snapshot of origin ``"retrain"`` whose offsets are the next offset after
the last record read in range per partition, as a trainer would commit them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from online_model.base import Recommender
from online_model.covisit import Covisitation
from online_model.covisit_batch import build_covisitation
from online_model.errors import ConfigurationError
from online_model.evaluation import PrequentialEvaluator
from online_model.snapshot import Snapshot, SnapshotMeta
from streams.replay.rebuild import TimeRange, Verdict, check_gate_metric, numeric_metrics
from streams.retrain import job
from streams.settings import Settings

log = logging.getLogger(__name__)

ORIGIN = "retrain"


@dataclass(frozen=True)
class RetrainSpec:
    """What to retrain, on what, and how to read it."""

    model: str
    params: dict[str, str]
    time_range: TimeRange
    topic: str | None = None
    input_path: str | None = None
    tail: int = 5_000
    gate: str | None = None
    idle_timeout: float = 5.0
    lateness: float = 0.0
    records_per_task: int = 250_000


def make_bulk_model(name: str, params: dict[str, str]) -> Covisitation:
    """The fresh model ``name`` with ``params``; refused unless it can learn in bulk."""
    from online_model.registry import make_model  # imported late: it imports every model

    model = make_model(name, params)
    if not isinstance(model, Covisitation):
        raise ConfigurationError(
            f"--model {name!r} ({type(model).__name__}) cannot be retrained in bulk yet; "
            "retrain builds covisit models"
        )
    return model


@dataclass
class Outcome:
    """A retrain's snapshot, the summary printed as JSON, and the gate's verdict."""

    snapshot: Snapshot
    summary: dict[str, Any]
    verdict: Verdict | None


def retrain_once(
    sc: Any, settings: Settings, spec: RetrainSpec, current: Snapshot | None = None
) -> Outcome:
    """Run steps 1-4 of the module docstring; ``current`` is what ``--gate`` must beat."""
    started = time.perf_counter()
    k = settings.k
    if spec.gate:
        check_gate_metric(spec.gate, k)
        if spec.tail <= 0:
            raise ConfigurationError("--gate scores the tail: it needs --tail > 0")
    params = make_bulk_model(spec.model, spec.params)._get_params()
    seconds: dict[str, float] = {}

    if spec.input_path is not None:
        read = job.read_file(spec.input_path, spec.time_range)
    else:
        topic = spec.topic or settings.topic_page_views
        read = job.read_kafka(
            sc,
            settings,
            topic,
            spec.time_range,
            spec.idle_timeout,
            spec.lateness,
            spec.records_per_task,
        )
    seconds["read"] = time.perf_counter() - started
    n = read.n_events
    n_prefix = max(0, n - spec.tail)

    mark = time.perf_counter()
    model = build_covisitation(params, job.covisit_statistics(sc, read.events, n_prefix, params))
    seconds["aggregate"] = time.perf_counter() - mark

    mark = time.perf_counter()
    tail = read.events.rows(n_prefix)
    seeds = read.events.pages_before(n_prefix, {u for u, _, _ in tail})
    report = _learn_tail(model, tail, seeds, settings, spec)
    seconds["tail"] = time.perf_counter() - mark

    verdict = None
    if spec.gate:
        mark = time.perf_counter()
        verdict = _judge(sc, spec.gate, report, current, read, n_prefix, tail, seeds, settings)
        seconds["gate"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started

    model_spec = {
        "name": spec.model,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "params": {key: _plain(v) for key, v in params.items()},
    }
    metrics = numeric_metrics(report)
    summary: dict[str, Any] = {
        "source": read.source,
        "events": n,
        "bulk_events": n_prefix,
        "tail_events": len(tail),
        "bad_records": read.n_bad,
        "bad_by_reason": read.bad_by_reason,
        "offsets": {t: {str(p): o for p, o in parts.items()} for t, parts in read.offsets.items()},
        "seconds": {name: round(s, 3) for name, s in seconds.items()},
        "events_per_s": round(n / seconds["total"], 1) if seconds["total"] else None,
        "learned_popularity_weight": model._mixture,
        "metrics": report,
        "model": model_spec,
    }
    meta = SnapshotMeta(
        model_name=settings.model_name,
        created_at=time.time(),
        events_seen=model.n_events_learned,
        origin=ORIGIN,
        offsets=read.offsets,
        metrics=metrics,
        extra={"retrain": {k: v for k, v in summary.items() if k != "metrics"}},
    )
    log.info("retrain done events=%d bad=%d seconds=%s", n, read.n_bad, summary["seconds"])
    return Outcome(Snapshot(meta, model, {"bad_events": read.n_bad}), summary, verdict)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _learn_tail(
    model: Recommender,
    tail: list[tuple[str, str, int]],
    seeds: dict[str, list[str]],
    settings: Settings,
    spec: RetrainSpec,
) -> dict[str, Any]:
    evaluator = PrequentialEvaluator(
        model, settings.k, settings.history_length, spec.model, spec.params
    )
    for user, pages in seeds.items():
        evaluator.remember(user, pages)
    for user, page, ts in tail:
        evaluator.update(user, page, ts)
    return evaluator.report()


def _judge(
    sc: Any,
    metric: str,
    report: dict[str, Any],
    current: Snapshot | None,
    read: job.LogRead,
    n_prefix: int,
    tail: list[tuple[str, str, int]],
    seeds: dict[str, list[str]],
    settings: Settings,
) -> Verdict:
    """Candidate vs the current model's class and params, built from the same prefix."""
    score = float(report[metric])
    if current is None:
        return Verdict(metric, score, None, None, True)
    served = current.model
    rival: Recommender
    if isinstance(served, Covisitation):
        rival_params = served._get_params()
        stats = job.covisit_statistics(sc, read.events, n_prefix, rival_params)
        rival = build_covisitation(rival_params, stats)
    else:
        rival = served.clone()
        for user, page, ts in read.events.rows(0, n_prefix):  # on the driver, in order
            rival.learn_one(user, page, x={"ts": ts})
    evaluator = PrequentialEvaluator(rival, settings.k, settings.history_length)
    for user, pages in seeds.items():
        evaluator.remember(user, pages)
    for user, page, ts in tail:
        evaluator.update(user, page, ts)
    rival_score = float(evaluator.report()[metric])
    return Verdict(metric, score, rival_score, current.meta.version, score > rival_score)
