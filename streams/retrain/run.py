"""One retrain: read the log on Spark, learn it in bulk, learn its tail online, judge it.

1. The log (a Kafka topic over ``[--from, --to)`` by record time, everything up to the job's
   start by default; or a CSV/JSONL file) is read and numbered in learning order by
   :mod:`streams.retrain.job`.
2. All but the newest ``tail`` events (the *prefix*) are aggregated into co-visitation
   statistics (pairs counted on the executors), from which the driver builds the model
   (:func:`online_model.models.covisit.batch.build_covisitation`).
3. The driver learns the tail online, test-then-train, with the users' earlier pages as
   their history (so the scores are those a replay gives on those events). This learns the
   popularity weight m, which is sequential, and gives the metrics of the snapshot.
4. ``--gate``: the current snapshot's class and parameters, built the same way from the
   same prefix (or, for a model that cannot learn in bulk, learning the prefix online on the
   driver), is scored on the same tail; the candidate must do strictly better.

The result is a snapshot of origin ``"retrain"`` whose offsets are the next offset after
the last record read in range per partition, as a trainer would commit them.

``--model hybrid`` builds no model: :func:`retrain_batch_layer` reads the log the same way
and fits the hybrid's item-item batch layer on all of it (the Gram matrix of the users'
page sets summed from the executors' parts, EASE solved on the driver:
:mod:`online_model.models.itemitem_batch`); the layer records the offsets it covers and is
published for the hybrid's trainer to swap in (:mod:`streams.state.batch_layers`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from online_model.base import Recommender
from online_model.errors import ConfigurationError
from online_model.evaluation import PrequentialEvaluator
from online_model.models.covisit import Covisitation
from online_model.models.covisit.batch import build_covisitation
from online_model.models.hybrid import Hybrid
from online_model.models.itemitem import ItemItem
from online_model.models.itemitem_batch import fit_params
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.replay.rebuild import Verdict, check_gate_metric, numeric_metrics
from streams.retrain import job
from streams.settings import Settings
from streams.time_range import TimeRange

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
    #: Skip (and count) malformed rows of ``input_path`` instead of refusing the file.
    skip_bad: bool = False
    tail: int = 5_000
    gate: str | None = None
    idle_timeout: float = 5.0
    lateness: float = 0.0
    records_per_task: int = 250_000


def make_bulk_model(name: str, params: dict[str, str]) -> Covisitation | Hybrid:
    """The fresh model ``name`` with ``params``; refused unless it can learn in bulk (a
    covisit model, or a hybrid, whose batch layer is what a retrain builds)."""
    from online_model.registry import make_model  # imported late: it imports every model

    model = make_model(name, params)
    if type(model) is not Hybrid and not isinstance(model, Covisitation):
        raise ConfigurationError(
            f"--model {name!r} ({type(model).__name__}) cannot be retrained in bulk yet; "
            "retrain builds covisit models and the batch layer of hybrid models"
        )
    return model


def builds_batch_layer(name: str, params: dict[str, str]) -> bool:
    """Whether a retrain of ``name`` builds a hybrid's batch layer, not a whole model."""
    return isinstance(make_bulk_model(name, params), Hybrid)


@dataclass
class BatchLayerOutcome:
    """A retrain's batch layer, the offsets it covers and the summary printed as JSON."""

    layer: ItemItem
    offsets: dict[str, dict[int, int]]
    summary: dict[str, Any]


def retrain_batch_layer(sc: Any, settings: Settings, spec: RetrainSpec) -> BatchLayerOutcome:
    """Read the log as :func:`retrain_once` does and fit the hybrid's batch layer on all of
    it (no tail, no gate: the hybrid's trainer learns the mix weight online)."""
    from online_model.persist.batch_layer_file import json_offsets

    started = time.perf_counter()
    hybrid = make_bulk_model(spec.model, spec.params)
    params = fit_params(hybrid._get_params())
    read = _read(sc, settings, spec)
    seconds = {"read": time.perf_counter() - started}
    mark = time.perf_counter()
    layer = job.item_item_layer(sc, read.events, params, json_offsets(read.offsets))
    seconds["fit"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    summary: dict[str, Any] = {
        "source": read.source,
        "events": read.n_events,
        "bad_records": read.n_bad,
        "bad_by_reason": read.bad_by_reason,
        "offsets": {t: {str(p): o for p, o in parts.items()} for t, parts in read.offsets.items()},
        "seconds": {name: round(s, 3) for name, s in seconds.items()},
        "events_per_s": round(read.n_events / seconds["total"], 1) if seconds["total"] else None,
        "batch_layer": {"pages": layer.n_pages, "neighbours": len(layer.neighbour)},
        "model": {
            "name": spec.model,
            "class": "online_model.itemitem.ItemItem",
            "params": params,
        },
    }
    log.info(
        "retrain batch layer done events=%d pages=%d seconds=%s",
        read.n_events,
        layer.n_pages,
        summary["seconds"],
    )
    return BatchLayerOutcome(layer, read.offsets, summary)


def _read(sc: Any, settings: Settings, spec: RetrainSpec) -> job.LogRead:
    if spec.input_path is not None:
        return job.read_file(spec.input_path, spec.time_range, skip_bad=spec.skip_bad)
    return job.read_kafka(
        sc,
        settings,
        spec.topic or settings.topic_page_views,
        spec.time_range,
        spec.idle_timeout,
        spec.lateness,
        spec.records_per_task,
    )


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
    bulk = make_bulk_model(spec.model, spec.params)
    if isinstance(bulk, Hybrid):
        raise ConfigurationError(
            f"--model {spec.model!r} is a hybrid: its retrain builds a batch layer "
            "(retrain_batch_layer), not a model"
        )
    params = bulk._get_params()
    seconds: dict[str, float] = {}

    read = _read(sc, settings, spec)
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
