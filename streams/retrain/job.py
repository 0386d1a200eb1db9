"""The Spark side of ``streamrec retrain``: read the log, order it, aggregate co-visitation.

Two Spark stages, each passing numpy columns, never a Python object per event:

1. **read** — one task per offset range reads and decodes its records into columns
   (:func:`~streams.retrain.kafka_ranges.read_range`); the driver collects them (about 24
   bytes per event), drops what lies past each partition's end, merges the id tables and
   sorts the events into learning order with one ``lexsort``
   (:class:`~online_model.models.covisit.batch.OrderedEvents`);
2. **count** — the events, cut into slices by user, go back to the executors, where
   :func:`~online_model.models.covisit.batch.pair_sums` counts each slice's transitions with
   numpy; the driver merges the per-pair sums and keeps each page's strongest links
   (:func:`~online_model.models.covisit.batch.bulk_statistics`).

What is computed per user, pair or page comes from :mod:`online_model.models.covisit.batch`
(shipped to the executors), so the distributed job and the online model share one
definition.

``--model hybrid`` replaces stage 2: one task per slice of users computes the users' page
sets and its part of the Gram matrix of the hybrid's batch layer
(:func:`item_item_layer`); EASE is solved on the driver.

Learning order is the replay's: page-view time, then partition, then offset (a file keeps
its order among equal times). Events are numbered 0.. in that order; the *prefix* (indexes
below ``n_prefix``) is aggregated in bulk, the *tail* is learned online on the driver (it
learns the popularity weight m and gives the gate its metrics; see
:mod:`streams.retrain.run`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from online_model.data.events_file import read_events
from online_model.models.covisit.batch import (
    CovisitStatistics,
    OrderedEvents,
    bulk_statistics,
    sorted_table,
)
from online_model.models.itemitem import ItemItem
from online_model.models.itemitem_batch import fit_in_bulk
from streams.retrain.kafka_ranges import RangeRead, ReadSpec, plan_ranges, read_ranges
from streams.retrain.spark_daemon import daemon_module
from streams.settings import Settings
from streams.time_range import TimeRange

log = logging.getLogger(__name__)


#: JVM options of a local driver we start ourselves (not under spark-submit, not a cluster).
LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

#: Settings of a short job of Python tasks, unless spark-submit's (or the user's) say
#: otherwise: no UI or event log to write, Python workers kept for the next stage, no wait
#: for a "local" slot (every task runs anywhere), and the driver JVM that only schedules
#: held to a small heap.
SHORT_JOB_CONF = {
    "spark.ui.enabled": "false",
    "spark.eventLog.enabled": "false",
    "spark.python.worker.reuse": "true",
    "spark.locality.wait": "0s",
}


def spark_context(master: str | None, app_name: str = "streamrec-retrain") -> Any:
    """A SparkContext: ``master`` if given, else spark-submit's, else ``local[*]``.

    A plain SparkContext, not a SparkSession: the job passes RDDs of numpy columns only,
    and the SQL side (its imports, its session state) costs seconds of start-up.
    """
    from pyspark import SparkConf, SparkContext

    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # spark-submit started this process and its JVM, which holds spark-submit's
        # settings (--master, --conf...). A SparkConf made before PySpark connects to that
        # JVM is an empty dict: its master would be local[*], whatever --master said.
        SparkContext._ensure_initialized()
    conf = SparkConf()
    resolved = master or conf.get("spark.master", None) or "local[*]"
    if resolved.startswith("local"):
        # Local executors run this interpreter (with this package), not whatever
        # ``python3`` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf.setMaster(resolved).setAppName(app_name)
    conf.set("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
    for key, value in SHORT_JOB_CONF.items():
        conf.setIfMissing(key, value)
    if resolved.startswith("local") and conf.get("spark.python.daemon.module", None) is None:
        # Workers that import PySpark compiled, not from its zip (see spark_daemon).
        module = daemon_module()
        if module is not None:
            conf.set("spark.python.daemon.module", module)
    if resolved.startswith("local") and conf.get("spark.driver.extraJavaOptions", None) is None:
        # The JVM only schedules here (Python does the work): its client compiler alone
        # and one GC thread start it faster and leave the cores to the Python workers.
        conf.set("spark.driver.extraJavaOptions", LOCAL_JVM_OPTIONS)
    sc = SparkContext.getOrCreate(conf)
    sc.setLogLevel("ERROR")
    return sc


@dataclass
class LogRead:
    """The events of one retrain in learning order, as columns, and what was read."""

    events: OrderedEvents
    source: dict[str, Any]
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    #: topic -> partition -> next offset after the last record read in range
    offsets: dict[str, dict[int, int]] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return len(self.events)

    @property
    def n_bad(self) -> int:
        return sum(self.bad_by_reason.values())


def read_kafka(
    sc: Any,
    settings: Settings,
    topic: str,
    time_range: TimeRange,
    idle_timeout: float,
    lateness: float,
    records_per_task: int,
) -> LogRead:
    """Plan offset ranges, read them in Spark tasks, keep what replay would keep, order it."""
    spec = ReadSpec.from_settings(settings, time_range, idle_timeout, lateness)
    partitions, ranges = plan_ranges(settings, topic, records_per_task)
    reads: list[RangeRead] = (
        sc.parallelize(ranges, len(ranges))
        .mapPartitions(lambda it: read_ranges(spec, it))
        .collect()
    )
    events, spans, bad = merge_ranges(reads)
    reports = [r.report for r in reads]
    source = {
        "kind": "kafka",
        "topic": topic,
        "partitions": partitions,
        "tasks": len(ranges),
        "time_range": time_range.to_dict(),
        "scanned": sum(r.scanned for r in reports),
        "no_timestamp": sum(r.no_timestamp for r in reports),
        # Busy time of the slowest task and of all (the idle wait that ends a range excluded).
        "task_seconds": {
            "max": round(max((r.seconds for r in reports), default=0.0), 3),
            "sum": round(sum(r.seconds for r in reports), 3),
        },
        "offset_ranges": {str(p): [s[0], s[1]] for p, s in sorted(spans.items())},
        "records_per_partition": {str(p): s[2] for p, s in sorted(spans.items())},
        "stopped": {
            str(p): sorted({r.stopped for r in reports if r.partition == p and r.end is None})
            for p in partitions
        },
    }
    offsets = {topic: {p: s[1] + 1 for p, s in sorted(spans.items())}} if spans else {}
    return LogRead(events, source, bad, offsets)


def merge_ranges(
    reads: list[RangeRead],
) -> tuple[OrderedEvents, dict[int, tuple[int, int, int]], dict[str, int]]:
    """The events of every range in learning order, each partition's ``(first offset,
    last offset, records)`` and the bad records by reason.

    A partition ends at its first record past ``to`` + lateness, whichever task saw it:
    records at or after that offset are dropped, decoded or not.
    """
    cutoff: dict[int, int] = {}
    for r in reads:
        if r.report.passed_at is not None:
            p = r.report.partition
            cutoff[p] = min(cutoff.get(p, r.report.passed_at), r.report.passed_at)
    user_index: dict[str, int] = {}
    page_index: dict[str, int] = {}
    spans: dict[int, tuple[int, int, int]] = {}
    bad: dict[str, int] = {}
    columns: list[tuple[np.ndarray, ...]] = []
    for r in reads:
        p = r.report.partition
        end = cutoff.get(p)
        keep = slice(None) if end is None else r.offset < end
        offset = r.offset[keep]
        bad_offsets = [o for o, _ in r.bad if end is None or o < end]
        for o, reason in r.bad:
            if end is None or o < end:
                bad[reason] = bad.get(reason, 0) + 1
        if len(offset) or bad_offsets:
            first = min([*offset[:1].tolist(), *bad_offsets])
            last = max([*offset[-1:].tolist(), *bad_offsets])
            old = spans.get(p)
            count = len(offset) + len(bad_offsets)
            spans[p] = (
                (first, last, count)
                if old is None
                else (min(old[0], first), max(old[1], last), old[2] + count)
            )
        users = np.fromiter((user_index.setdefault(u, len(user_index)) for u in r.users), np.int32)
        pages = np.fromiter((page_index.setdefault(q, len(page_index)) for q in r.pages), np.int32)
        columns.append(
            (
                r.ts[keep],
                np.full(len(offset), p, dtype=np.int32),
                offset,
                users[r.user[keep]] if len(users) else r.user[keep],
                pages[r.page[keep]] if len(pages) else r.page[keep],
            )
        )
    if columns:
        ts, partition, offset, user, page = (np.concatenate(c) for c in zip(*columns, strict=True))
    else:
        ts = offset = np.empty(0, np.int64)
        partition = user = page = np.empty(0, np.int32)
    order = np.lexsort((offset, partition, ts))
    page_table, page_codes = sorted_table(list(page_index), page[order])
    events = OrderedEvents(list(user_index), page_table, user[order], page_codes, ts[order])
    return events, spans, bad


def read_file(path: str, time_range: TimeRange, *, skip_bad: bool = False) -> LogRead:
    """A CSV/JSONL file of page views, read on the driver.

    A malformed row refuses the file (``InputError`` naming the file and line), as
    ``streamrec produce`` does; with ``skip_bad`` it is counted (``bad_row``), and
    :func:`~online_model.data.events_file.read_events` logs the count and the first one.
    """
    event_log = read_events(path, skip_bad=skip_bad)
    events = OrderedEvents.from_rows(
        (e.user_id, e.page_id, e.ts_ms) for e in event_log.events if e.ts_ms in time_range
    )
    source = {"kind": "file", "path": str(path), "time_range": time_range.to_dict()}
    bad = {"bad_row": event_log.n_bad} if event_log.n_bad else {}
    return LogRead(events, source, bad)


def covisit_statistics(
    sc: Any, events: OrderedEvents, n_prefix: int, params: dict[str, Any]
) -> CovisitStatistics:
    """The co-visitation statistics of the events with index < ``n_prefix``: pairs counted
    on the executors, one slice of users per task, then shuffled by source page to the
    tasks that keep each page's strongest links."""

    def on_executors(
        mapper: Callable[[Any], list[tuple[int, Any]]],
        reducer: Callable[[list[Any]], Any],
        slices: list[Any],
        n_buckets: int,
    ) -> list[Any]:
        return (
            sc.parallelize(slices, len(slices))
            .flatMap(mapper)
            .partitionBy(n_buckets, int)  # buckets are partition numbers already
            .mapPartitions(lambda parts: [reducer([part for _, part in parts])])
            .collect()
        )

    return bulk_statistics(events, n_prefix, params, on_executors, sc.defaultParallelism)


def item_item_layer(
    sc: Any, events: OrderedEvents, params: dict[str, Any], position: Any
) -> ItemItem:
    """A hybrid's item-item batch layer over all ``events``: the users' page sets and the
    Gram matrix parts computed by one task per slice of users, summed and solved (EASE)
    on the driver (:func:`online_model.models.itemitem_batch.fit_in_bulk`)."""

    def on_executors(function: Callable[[Any], Any], slices: list[Any]) -> list[Any]:
        return sc.parallelize(slices, len(slices)).map(function).collect()

    return fit_in_bulk(
        events, params, run=on_executors, n_slices=sc.defaultParallelism, position=position
    )
