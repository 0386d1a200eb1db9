"""The Spark side of ``streamrec retrain``: read the log, order it, aggregate co-visitation.

Every function here takes a ``SparkContext`` and RDDs of plain tuples; what they compute
per user, pair or page comes from :mod:`online_model.covisit_batch` (pure Python, shipped
to the executors), so the distributed job and the online model share one definition.

Learning order is the replay's: page-view time, then partition, then offset (a file keeps
its order among equal times). Events are numbered 0.. in that order; the *prefix* (indexes
below ``n_prefix``) is aggregated on executors, the *tail* is learned online on the driver
(it learns the popularity weight m and gives the gate its metrics; see
:mod:`streams.retrain.run`).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import add
from typing import Any

from online_model.covisit_batch import (
    CovisitStatistics,
    DecayClock,
    UserEvent,
    clocks_of,
    events_first_after,
    recent_pages,
    row_length,
    strongest,
    user_transitions,
)
from online_model.data.events_file import read_events
from streams.replay.rebuild import TimeRange
from streams.retrain.kafka_ranges import RangeReport, ReadSpec, plan_ranges, read_ranges
from streams.settings import Settings

log = logging.getLogger(__name__)

#: An event in learning order: (index, user_id, page_id, ts_ms).
Ordered = tuple[int, str, str, int]


def spark_context(master: str | None, app_name: str = "streamrec-retrain") -> Any:
    """A SparkContext: ``master`` if given, else spark-submit's, else ``local[*]``."""
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    conf = SparkConf()
    resolved = master or conf.get("spark.master", None) or "local[*]"
    if resolved.startswith("local"):
        # Local executors run this interpreter (with this package), not whatever
        # ``python3`` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(resolved)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
    )
    session = builder.getOrCreate()
    sc = session.sparkContext
    sc.setLogLevel("ERROR")
    return sc


@dataclass
class LogRead:
    """The events of one retrain in learning order (a persisted RDD) and what was read."""

    ordered: Any  # RDD[Ordered]
    n_events: int
    source: dict[str, Any]
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    #: topic -> partition -> next offset after the last record read in range
    offsets: dict[str, dict[int, int]] = field(default_factory=dict)

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
    from pyspark import StorageLevel

    spec = ReadSpec.from_settings(settings, time_range, idle_timeout, lateness)
    partitions, ranges = plan_ranges(settings, topic, records_per_task)
    tagged = (
        sc.parallelize(ranges, len(ranges))
        .mapPartitions(lambda it: read_ranges(spec, it))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    reports: list[RangeReport] = tagged.filter(lambda row: row[0] == "M").values().collect()
    # A partition ends at its first record past ``to`` + lateness, whichever task saw it.
    cutoff: dict[int, int] = {}
    for r in reports:
        if r.passed_at is not None:
            cutoff[r.partition] = min(cutoff.get(r.partition, r.passed_at), r.passed_at)

    def kept(row: tuple[str, Any]) -> bool:
        if row[0] == "M":
            return False
        partition, offset = (row[1][1], row[1][2]) if row[0] == "E" else row[1][:2]
        return offset < cutoff.get(partition, math.inf)

    records = tagged.filter(kept)
    spans: dict[int, list[int]] = {}  # partition -> [first offset, last offset, records]
    bad: dict[str, int] = {}
    for part_spans, part_bad in records.mapPartitions(_summarise).collect():
        for p, (first, last, count) in part_spans.items():
            span = spans.setdefault(p, [first, last, 0])
            span[0], span[1], span[2] = min(span[0], first), max(span[1], last), span[2] + count
        for reason, count in part_bad.items():
            bad[reason] = bad.get(reason, 0) + count
    events = records.filter(lambda row: row[0] == "E").values()
    ordered = _number(events.sortBy(lambda e: (e[0], e[1], e[2])))
    n = sum(s[2] for s in spans.values()) - sum(bad.values())
    ordered.count()  # materialise the ordered events before the raw rows are dropped
    tagged.unpersist()
    source = {
        "kind": "kafka",
        "topic": topic,
        "partitions": partitions,
        "tasks": len(ranges),
        "time_range": time_range.to_dict(),
        "scanned": sum(r.scanned for r in reports),
        "no_timestamp": sum(r.no_timestamp for r in reports),
        "offset_ranges": {str(p): [s[0], s[1]] for p, s in sorted(spans.items())},
        "records_per_partition": {str(p): s[2] for p, s in sorted(spans.items())},
        "stopped": {
            str(p): sorted({r.stopped for r in reports if r.partition == p and r.end is None})
            for p in partitions
        },
    }
    offsets = {topic: {p: s[1] + 1 for p, s in sorted(spans.items())}} if spans else {}
    return LogRead(ordered, n, source, bad, offsets)


def _summarise(rows: Iterable[tuple[str, Any]]) -> Iterator[Any]:
    """Per Spark partition: {partition: (first, last, records)} and {reason: bad records}."""
    spans: dict[int, tuple[int, int, int]] = {}
    bad: dict[str, int] = {}
    for tag, row in rows:
        partition, offset = (row[1], row[2]) if tag == "E" else (row[0], row[1])
        if tag == "B":
            bad[row[2]] = bad.get(row[2], 0) + 1
        old = spans.get(partition)
        spans[partition] = (
            (offset, offset, 1)
            if old is None
            else (min(old[0], offset), max(old[1], offset), old[2] + 1)
        )
    yield spans, bad


def read_file(sc: Any, path: str, time_range: TimeRange, slices: int | None = None) -> LogRead:
    """A CSV/JSONL file of page views (read on the driver; malformed rows are counted)."""
    event_log = read_events(path, skip_bad=True)
    rows = [
        (i, e.user_id, e.page_id, e.ts_ms)
        for i, e in enumerate(e for e in event_log.events if e.ts_ms in time_range)
    ]
    ordered = _persist(sc.parallelize(rows, slices or sc.defaultParallelism))
    source = {"kind": "file", "path": str(path), "time_range": time_range.to_dict()}
    bad = {"bad_row": event_log.n_bad} if event_log.n_bad else {}
    return LogRead(ordered, len(rows), source, bad)


def _number(events: Any) -> Any:
    """(ts, partition, offset, user, page) sorted -> persisted (index, user, page, ts)."""
    return _persist(events.zipWithIndex().map(lambda ei: (ei[1], ei[0][3], ei[0][4], ei[0][0])))


def _persist(rdd: Any) -> Any:
    from pyspark import StorageLevel

    return rdd.persist(StorageLevel.MEMORY_AND_DISK)


def covisit_statistics(ordered: Any, n_prefix: int, params: dict[str, Any]) -> CovisitStatistics:
    """The co-visitation statistics of the events with index < ``n_prefix``, on executors."""
    link_clock, pop_clock = clocks_of(params)
    prefix = _persist(ordered.filter(lambda e: e[0] < n_prefix))
    if n_prefix == 0:
        prefix.unpersist()
        return CovisitStatistics(0, None, None)
    link_origin = _final_origin(prefix, n_prefix, link_clock)
    pop_origin = _final_origin(prefix, n_prefix, pop_clock)

    by_user = _persist(
        prefix.map(lambda e: (e[1], (e[0], e[2], e[3])))
        .groupByKey()
        .mapValues(lambda seq: [UserEvent(i, page, ts) for i, page, ts in sorted(seq)])
    )

    def pair_sums(users: Iterable[tuple[str, list[UserEvent]]]) -> Iterator[Any]:
        sums: dict[tuple[Hashable, Hashable], float] = {}
        get = sums.get
        for _, seq in users:
            for src, dst, w in user_transitions(seq, params, link_clock, link_origin):
                key = (src, dst)
                sums[key] = get(key, 0.0) + w
        return iter(sums.items())

    kept = row_length(params)
    rows = (
        by_user.mapPartitions(pair_sums)
        .reduceByKey(add)
        .map(lambda kv: (kv[0][0], (kv[0][1], kv[1])))
        .groupByKey()
        .map(lambda kv: (kv[0], math.fsum(w for _, w in kv[1]), strongest(kv[1], kept)))
        .collect()
    )

    def page_weights(events: Iterable[Ordered]) -> Iterator[Any]:
        sums: dict[Hashable, tuple[float, int]] = {}
        for index, _, page, ts in events:
            w = pop_clock.weight(pop_clock.time_of(index, ts), pop_origin)
            old = sums.get(page)
            sums[page] = (w, index) if old is None else (old[0] + w, old[1])
        return iter(sums.items())

    pops = (
        prefix.mapPartitions(page_weights)
        .reduceByKey(lambda a, b: (a[0] + b[0], min(a[1], b[1])))
        .collect()
    )
    max_users = int(params.get("max_users", 100_000))
    last = by_user.map(lambda kv: (*recent_pages(kv[1], params), kv[0])).takeOrdered(
        max_users, key=lambda t: -t[0]
    )
    by_user.unpersist()
    prefix.unpersist()
    return CovisitStatistics(
        n_events=n_prefix,
        link_origin=link_origin,
        pop_origin=pop_origin,
        rows={src: row for src, _, row in rows},
        out={src: total for src, total, _ in rows},
        popularity=[(page, w) for page, (w, _) in sorted(pops, key=lambda kv: kv[1][1])],
        histories=[(user, pages) for _, pages, user in sorted(last)],
    )


def _final_origin(prefix: Any, n_prefix: int, clock: DecayClock) -> float | None:
    if clock.unit == "events":
        return clock.final_origin(n_prefix, 0.0, events_first_after(n_prefix))
    times = prefix.map(lambda e: clock.time_of(e[0], e[3]))

    def first_after(t: float) -> float | None:
        later = times.filter(lambda x: x > t)
        return None if later.isEmpty() else float(later.min())

    first = prefix.filter(lambda e: e[0] == 0).map(lambda e: clock.time_of(e[0], e[3])).first()
    return clock.final_origin(n_prefix, first, first_after)


def tail_events(ordered: Any, n_prefix: int) -> list[tuple[str, str, int]]:
    """The events with index >= ``n_prefix``, in order, on the driver."""
    rows = ordered.filter(lambda e: e[0] >= n_prefix).collect()
    return [(user, page, ts) for _, user, page, ts in sorted(rows)]


def prefix_histories(ordered: Any, n_prefix: int, users: set[str], sc: Any) -> dict[str, list[str]]:
    """Each of ``users``' pages before the tail, oldest first (to seed the evaluator)."""
    wanted = sc.broadcast(users)
    rows = (
        ordered.filter(lambda e: e[0] < n_prefix and e[1] in wanted.value)
        .map(lambda e: (e[1], (e[0], e[2])))
        .groupByKey()
        .mapValues(lambda seq: [page for _, page in sorted(seq)])
        .collect()
    )
    wanted.unpersist()
    return dict(rows)


def learn_prefix_online(
    ordered: Any, n_prefix: int, learn: Callable[[str, str, int], None]
) -> None:
    """Stream the prefix to the driver in order (for a model that cannot learn in bulk)."""
    prefix = ordered.filter(lambda e: e[0] < n_prefix).sortBy(lambda e: e[0])
    for _, user, page, ts in prefix.toLocalIterator():
        learn(user, page, ts)
