"""Offset ranges of the page-view log: planned on the driver, read by Spark tasks.

No Spark-Kafka connector: the driver lists the partitions and their watermarks and cuts each
partition into equal offset ranges of at most ``records_per_task``; every task reads one
range with a plain confluent-kafka consumer (``assign`` at the start offset, no consumer
group, nothing committed) and decodes it with our Avro codec.

Watermarks only decide where to *cut*, never where to *stop*: some brokers (Tansu) report
the base offset of the last batch + 1 as the high watermark, so the last range of every
partition is open-ended and reads until a record stamped at or after ``to`` + ``lateness``
(``to`` defaults to the job's start time: "everything up to now") or until the partition
delivers nothing for ``idle_timeout`` seconds, or until the range reaches the end of the log
once the clock is past ``to`` + ``lateness``. The end of the log comes from the fetch
responses (librdkafka's partition EOF, ``enable.partition.eof``), which even Tansu reports
exactly: a record appended after that could only be stamped past ``to`` + ``lateness`` by a
producer keeping time, so waiting ``idle_timeout`` for it is wasted (an open-ended range or
a ``to`` still ahead waits for the idle timeout as before). Ranges start at the low
watermark and filter by record timestamp: ``offsets_for_times`` can answer 0 (Tansu) and
producer timestamps are not ordered, so seeking to ``--from`` could skip records of the
range.

As in ``streamrec replay``, a partition ends at its first record stamped past ``to`` +
``lateness``: each range reports the offset of that record (``passed_at``) and records
after the smallest one of the partition are dropped by the job, so cutting a partition
into ranges does not change what is read.

A task returns one :class:`RangeRead` per range: numpy columns of the decoded page views
(a few bytes per event to pickle, not a Python object per record), the records that did
not decode with their reason, and a :class:`RangeReport`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streams.errors import ServiceError, StreamrecError
from streams.io.codec import PAGE_VIEW, AvroCodec
from streams.io.consumer_errors import is_record
from streams.io.stall_watch import MAX_FETCH_WAIT_MS, next_fetch_wait, records_past, starved_error
from streams.retrain.view_fields import fields_reader

# Not at run time: tasks import this module, and Settings imports every model.
if TYPE_CHECKING:
    from streams.settings import Settings
    from streams.time_range import TimeRange

log = logging.getLogger(__name__)

_FOREVER, _FOREVER_AGO = 1 << 64, -(1 << 64)

#: Extra seconds of silence allowed before a range's first record (connect + first fetch).
CONNECT_GRACE_S = 5.0


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``[start, end)`` of one partition; ``end=None`` reads to the end of the log."""

    topic: str
    partition: int
    start: int
    end: int | None


@dataclass
class RangeReport:
    """What one task read: how many records, why it stopped, where the partition passed."""

    partition: int
    start: int
    end: int | None
    scanned: int = 0
    no_timestamp: int = 0
    passed_at: int | None = None  # offset of the first record stamped past to + lateness
    #: "end" (reached ``end``), "passed_to", "end_of_log" (past to + lateness) or "idle"
    stopped: str = "end"
    seconds: float = 0.0  # from the task's start to its last record handled


@dataclass(frozen=True)
class ReadSpec:
    """Everything a task needs, picklable: consumer config, codec and time bounds."""

    consumer_config: dict[str, Any]
    # The bounds of TimeRange as plain ints: tasks need not import the replay module.
    start_ms: int | None
    end_ms: int | None
    lateness_ms: int = 0
    idle_timeout: float = 5.0
    registry_url: str | None = None
    max_event_bytes: int = 64 * 1024
    max_records: int = 5_000
    poll_timeout: float = 0.25
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls, settings: Settings, time_range: TimeRange, idle_timeout: float, lateness: float
    ) -> ReadSpec:
        if idle_timeout <= 0:
            raise ServiceError(f"idle timeout must be > 0 seconds, got {idle_timeout}")
        config = settings.consumer_config(
            f"streamrec-retrain-{uuid.uuid4().hex[:12]}",  # never joined, never committed
            **{"enable.auto.commit": False, "enable.auto.offset.store": False},
        )
        config["enable.partition.eof"] = True  # the end of the log ends a range (see above)
        return cls(
            consumer_config=config,
            start_ms=time_range.start_ms,
            end_ms=time_range.end_ms,
            lateness_ms=int(lateness * 1000),
            idle_timeout=idle_timeout,
            registry_url=settings.schema_registry_url,
            max_event_bytes=settings.max_event_bytes,
        )


def plan_ranges(
    settings: Settings, topic: str, records_per_task: int = 250_000
) -> tuple[list[int], list[OffsetRange]]:
    """The topic's partitions and the ranges that cover them, open-ended last ones."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    if records_per_task < 1:
        raise ServiceError(f"records per task must be >= 1, got {records_per_task}")
    consumer = Consumer(settings.consumer_config(f"streamrec-retrain-plan-{uuid.uuid4().hex}"))
    try:
        try:
            meta = consumer.list_topics(topic, timeout=10.0).topics.get(topic)
        except KafkaException as exc:
            raise ServiceError(
                f"cannot read metadata of topic {topic} at {settings.bootstrap_servers}: {exc}"
            ) from exc
        if meta is None or meta.error is not None or not meta.partitions:
            raise ServiceError(
                f"topic {topic} is not available: {(meta and meta.error) or 'no partitions'}"
            )
        partitions = sorted(meta.partitions)
        ranges: list[OffsetRange] = []
        for p in partitions:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10.0, cached=False
                )
            except KafkaException as exc:
                raise ServiceError(f"cannot read offsets of {topic}[{p}]: {exc}") from exc
            ranges += split_partition(topic, p, max(low, 0), max(high, 0), records_per_task)
    finally:
        consumer.close()
    log.info("retrain plan topic=%s partitions=%s ranges=%d", topic, partitions, len(ranges))
    return partitions, ranges


def split_partition(
    topic: str, partition: int, low: int, high: int, records_per_task: int
) -> list[OffsetRange]:
    """Cut ``[low, high)`` into equal ranges of at most ``records_per_task``; the last one
    is open-ended. Equal, so the tasks of a partition end together: a 250,000 + 80,000 cut
    would leave a core idle while the other reads the big one.

    >>> [(r.start, r.end) for r in split_partition("t", 0, 0, 5, 2)]
    [(0, 2), (2, 4), (4, None)]
    >>> [(r.start, r.end) for r in split_partition("t", 0, 0, 330, 250)]
    [(0, 165), (165, None)]
    >>> [(r.start, r.end) for r in split_partition("t", 0, 7, 7, 2)]
    [(7, None)]
    """
    n_ranges = max(1, -(-(high - low) // records_per_task))
    size = max(1, -(-(high - low) // n_ranges))
    starts = list(range(low, max(high, low + 1), size))
    ends: list[int | None] = [*starts[1:], None]
    return [OffsetRange(topic, partition, s, e) for s, e in zip(starts, ends, strict=True)]


def read_range(spec: ReadSpec, rng: OffsetRange) -> RangeRead:
    """Read one range (runs in a Spark task) into columns (see :class:`RangeRead`).

    A record that does not decode is counted by its error's ``reason``, never raised; a
    broker that cannot be reached is a :class:`ServiceError` (the task fails, Spark retries
    it, and the job fails after its retries).
    """
    from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, TopicPartition

    codec = AvroCodec.bundled(PAGE_VIEW, spec.registry_url, max_bytes=spec.max_event_bytes)
    decode, fast = codec.decode, fields_reader(codec)
    # TimeRange's tests, inlined: [low, high) is kept, a time at or past stop_at passes.
    low = _FOREVER_AGO if spec.start_ms is None else spec.start_ms
    high = stop_at = _FOREVER if spec.end_ms is None else spec.end_ms
    if spec.end_ms is not None:
        stop_at = spec.end_ms + spec.lateness_ms
    started = busy_until = time.monotonic()
    report = RangeReport(rng.partition, rng.start, rng.end)
    out = RangeRead(report)
    # Column lists filled per record; user and page ids become codes into per-range tables.
    times, offsets, users, pages = out.ts, out.offset, out.user, out.page
    user_index: dict[str, int] = {}
    page_index: dict[str, int] = {}
    end = rng.end
    config = dict(spec.consumer_config)
    consumer = Consumer(config)
    position = rng.start  # the next offset to read
    try:
        consumer.assign([TopicPartition(rng.topic, rng.partition, rng.start)])
        # Until the first record arrives, connecting and the first fetch may take a while
        # on a loaded machine: that silence must not end the range as "idle".
        last_seen = time.monotonic() + CONNECT_GRACE_S
        while True:
            messages: list[Any] = consumer.consume(spec.max_records, spec.poll_timeout)
            done = got = False
            for msg in messages:
                if msg.error() is not None:
                    if not is_record(msg, "retrain") and _at_end_of_log(msg, stop_at):
                        report.stopped, done = "end_of_log", True
                        break
                    continue
                offset = msg.offset()
                if end is not None and offset >= end:
                    done = True
                    break
                got = True
                position = offset + 1
                report.scanned += 1
                ts_type, ts = msg.timestamp()
                if ts_type == TIMESTAMP_NOT_AVAILABLE:
                    report.no_timestamp += 1
                elif ts >= stop_at:
                    report.passed_at, report.stopped, done = offset, "passed_to", True
                    break
                elif low <= ts < high:
                    value = msg.value()
                    fields = fast(value)
                    if fields is None:
                        try:
                            view = decode(value)
                            fields = (view["user_id"], view["page_id"], view["ts"])
                        except StreamrecError as exc:
                            out.bad.append((offset, getattr(exc, "reason", type(exc).__name__)))
                    if fields is not None:
                        user, page, view_ts = fields
                        times.append(view_ts)
                        offsets.append(offset)
                        code = user_index.get(user)
                        if code is None:
                            code = user_index[user] = len(user_index)
                        users.append(code)
                        code = page_index.get(page)
                        if code is None:
                            code = page_index[page] = len(page_index)
                        pages.append(code)
                if end is not None and offset >= end - 1:
                    done = True
                    break
            if done:
                break
            # Silence counts from the end of the last batch handled: decoding a large batch
            # on a busy executor must not look like an idle partition.
            now = time.monotonic()
            if got:
                last_seen = busy_until = now
            elif now - last_seen >= spec.idle_timeout:
                if _silent_with_records_left(consumer, rng, position, config["fetch.wait.max.ms"]):
                    # A stalled fetch, not the end: a new consumer with a longer wait.
                    config["fetch.wait.max.ms"] = next_fetch_wait(config["fetch.wait.max.ms"])
                    consumer.close()
                    consumer = Consumer(config)
                    consumer.assign([TopicPartition(rng.topic, rng.partition, position)])
                    last_seen = time.monotonic()
                    continue
                report.stopped = "idle"
                break
    finally:
        consumer.close()
    report.seconds = (busy_until if report.stopped == "idle" else time.monotonic()) - started
    return out.packed(list(user_index), list(page_index))


def _silent_with_records_left(
    consumer: Any, rng: OffsetRange, position: int, fetch_wait_ms: int
) -> bool:
    """Whether a range that got nothing for the idle timeout still has records on the
    broker (a stalled fetch: :mod:`streams.io.stall_watch`). Raises :class:`ServiceError`
    when the fetch wait is already the longest, so the task fails instead of returning a
    part of its range."""
    from confluent_kafka import KafkaException

    try:
        remaining = records_past(consumer, rng.topic, rng.partition, position)
    except KafkaException as exc:
        raise ServiceError(f"cannot read the end of {rng.topic}/{rng.partition}: {exc}") from exc
    if rng.end is not None:
        remaining = min(remaining, max(0, rng.end - position))
    if not remaining:
        return False
    if fetch_wait_ms >= MAX_FETCH_WAIT_MS:
        raise ServiceError(starved_error("retrain", rng.topic, rng.partition, remaining))
    log.error(
        "consumer_stalled reader=retrain topic=%s partition=%d remaining=%d fetch_wait_ms=%d:"
        " the broker answers no records though the log holds some; replacing the consumer",
        rng.topic,
        rng.partition,
        remaining,
        fetch_wait_ms,
    )
    return True


def _at_end_of_log(msg: Any, stop_at: int) -> bool:
    """Whether ``msg`` says the partition's log ends here and the clock is past ``stop_at``
    (so nothing appended from now on belongs to the range)."""
    from confluent_kafka import KafkaError

    err = msg.error()
    return err.code() == KafkaError._PARTITION_EOF and time.time() * 1000 >= stop_at


@dataclass
class RangeRead:
    """What one task read, compact to ship to the driver: the decoded page views as
    columns (event time, offset, and codes into this range's ``users`` and ``pages``
    tables), the records that did not decode as ``(offset, reason)``, and the report."""

    report: RangeReport
    ts: Any = field(default_factory=list)  # int64 array once packed
    offset: Any = field(default_factory=list)  # int64
    user: Any = field(default_factory=list)  # int32 codes into users
    page: Any = field(default_factory=list)  # int32 codes into pages
    users: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)

    def packed(self, users: list[str], pages: list[str]) -> RangeRead:
        import numpy as np

        return RangeRead(
            self.report,
            np.asarray(self.ts, dtype=np.int64),
            np.asarray(self.offset, dtype=np.int64),
            np.asarray(self.user, dtype=np.int32),
            np.asarray(self.page, dtype=np.int32),
            users,
            pages,
            self.bad,
        )


def read_ranges(spec: ReadSpec, ranges: Iterator[OffsetRange]) -> Iterator[RangeRead]:
    """:func:`read_range` over every range of one Spark partition."""
    for rng in ranges:
        yield read_range(spec, rng)
