"""Consumer lag per partition: how far the scorer's and the trainer's groups are behind.

Lag of a group on a partition = the partition's high watermark minus the group's
committed offset (the next offset it will read). A group that never committed on a
partition starts at the low watermark (``auto.offset.reset=earliest``), so its lag
counts from there; so does a commit below the low watermark (those records are gone).

One read asks the broker three things through plain consumers (one per group, never
subscribed), each bounded by a timeout: the partitions of the page-view topic
(metadata), their low and high watermarks (``ListOffsets``) and each group's committed
offsets (``OffsetFetch``). The embedded
Tansu broker answers all three; its high watermark is the base offset of the last
batch + 1, so there the high watermark is raised to the highest commit of the groups
read, and the lag of a partition whose last batch held several records reads low (a
lower bound, never below 0); on Apache Kafka it is exact.

:class:`LagMonitor` caches the last read for ``max_age_s`` and runs reads on a thread of
its own, one at a time: the scorer's event loop never waits for the broker longer than
``wait_s``, and a slow broker never queues reads up or takes threads from the default
executor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from streams.settings import Settings

log = logging.getLogger(__name__)

#: Seconds one broker request of a read may take.
REQUEST_TIMEOUT_S = 2.0
#: A committed offset librdkafka reports for a partition the group never committed on.
NO_OFFSET = -1001


def describe(exc: BaseException) -> str:
    """A read's failure in words (librdkafka's message, not its error object's repr)."""
    first: Any = exc.args[0] if exc.args else None
    text = first.str() if hasattr(first, "str") else str(exc) or type(exc).__name__
    return f"Kafka did not answer: {text}"


def partition_lag(committed: int | None, low: int, high: int) -> int:
    """Records of ``[low, high)`` a group that committed ``committed`` has not read yet.

    >>> partition_lag(7, 0, 10)
    3
    >>> partition_lag(None, 4, 10)   # never committed: it starts at the low watermark
    6
    >>> partition_lag(2, 4, 10)      # records below 4 are gone: it resumes at 4
    6
    >>> partition_lag(12, 0, 10)     # a watermark that reads low (Tansu) is no negative lag
    0
    """
    start = low if committed is None or committed < 0 else max(committed, low)
    return max(0, high - start)


@dataclass(frozen=True)
class PartitionLag:
    """One row of the lag table: a group on one partition."""

    role: str
    group: str
    topic: str
    partition: int
    #: The next offset the group reads (None: it never committed here).
    committed: int | None
    high: int
    lag: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "group": self.group,
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "high": self.high,
            "lag": self.lag,
        }


@dataclass(frozen=True)
class LagReport:
    """A read of every group's lag (``error``: why the last read failed, if it did)."""

    measured_at: float | None = None
    partitions: tuple[PartitionLag, ...] = ()
    error: str | None = None

    def totals(self) -> dict[str, int]:
        """Lag summed over partitions, per role."""
        out: dict[str, int] = {}
        for row in self.partitions:
            out[row.role] = out.get(row.role, 0) + row.lag
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "measured_at": self.measured_at,
            "error": self.error,
            "totals": self.totals(),
            "partitions": [row.as_dict() for row in self.partitions],
        }


def lag_rows(
    groups: Mapping[str, str],
    topic: str,
    watermarks: Mapping[int, tuple[int, int]],
    committed: Mapping[str, Mapping[int, int | None]],
) -> list[PartitionLag]:
    """Rows for every ``role -> group`` on every partition of ``watermarks``.

    A high watermark below what a group committed (Tansu's reads low: the base offset of
    the last batch + 1) is raised to the highest commit, since at least that many records
    are there: no group shows "committed 944 of 1", and the others' lag is a lower bound.

    >>> rows = lag_rows({"scorer": "s"}, "pv", {0: (0, 5), 1: (0, 3)}, {"s": {0: 5}})
    >>> [(r.partition, r.committed, r.lag) for r in rows]
    [(0, 5, 0), (1, None, 3)]
    >>> rows = lag_rows({"s": "s", "t": "t"}, "pv", {0: (0, 1)}, {"s": {0: 944}})
    >>> [(r.group, r.committed, r.high, r.lag) for r in rows]
    [('s', 944, 944, 0), ('t', None, 944, 944)]
    """
    bounds = {}
    for partition, (low, high) in sorted(watermarks.items()):
        commits = (committed.get(group, {}).get(partition) for group in groups.values())
        bounds[partition] = (low, max([high, *(c for c in commits if c is not None and c >= 0)]))
    rows = []
    for role, group in groups.items():
        done = committed.get(group, {})
        for partition, (low, high) in bounds.items():
            offset = done.get(partition)
            offset = None if offset is None or offset < 0 else offset
            rows.append(
                PartitionLag(
                    role, group, topic, partition, offset, high, partition_lag(offset, low, high)
                )
            )
    return rows


class LagReader:
    """Reads watermarks and committed offsets with one plain consumer per group (blocking).

    Consumers, not an admin client: librdkafka 2.16's admin ``ListConsumerGroupOffsets``
    aborts the whole process (``rd_kafka_enq_once_del_source_return: Assertion
    'eonce->refcnt > 0'``) when a request that timed out while the group coordinator was
    away is answered later (README, "What happens on each failure"). A consumer's
    ``committed()`` takes another path. These consumers never subscribe, so they never
    join the groups they read.
    """

    def __init__(self, settings: Settings, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._consumers: dict[str, Any] = {}

    def _consumer(self, group: str) -> Any:
        consumer = self._consumers.get(group)
        if consumer is None:
            from confluent_kafka import Consumer

            consumer = self._consumers[group] = Consumer(
                {
                    **self.settings.kafka_common(),
                    "group.id": group,
                    "enable.auto.commit": False,
                    "socket.timeout.ms": int(self.timeout_s * 1000),
                }
            )
        return consumer

    def _forget_others(self, groups: Sequence[str]) -> None:
        for group in [g for g in self._consumers if g not in groups]:
            self._consumers.pop(group).close()

    def read(self, groups: Mapping[str, str], topic: str) -> list[PartitionLag]:
        """Lag rows of ``groups`` (role -> group id) on ``topic``; raises KafkaException
        when the broker does not answer within the timeouts."""
        from confluent_kafka import TopicPartition

        wanted = list(dict.fromkeys(groups.values()))
        if not wanted:
            return []
        self._forget_others(wanted)
        wait = self.timeout_s
        any_consumer = self._consumer(wanted[0])
        meta = any_consumer.list_topics(topic, timeout=wait).topics.get(topic)
        if meta is None or meta.error is not None:
            raise LookupError(f"topic {topic} is not available: {meta and meta.error}")
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        if not parts:
            return []
        watermarks = {
            tp.partition: tuple(
                max(0, end) for end in any_consumer.get_watermark_offsets(tp, timeout=wait)
            )
            for tp in parts
        }
        committed: dict[str, dict[int, int | None]] = {}
        for group in wanted:
            answer = self._consumer(group).committed(parts, timeout=wait)
            committed[group] = {
                tp.partition: None if tp.error or tp.offset == NO_OFFSET else tp.offset
                for tp in answer
            }
        return lag_rows(groups, topic, watermarks, committed)

    def close(self) -> None:
        self._forget_others([])


@dataclass
class LagMonitor:
    """The last lag read, refreshed on demand when older than ``max_age_s``.

    ``groups`` is called at each read (role -> group id), so a group that appears later
    (a running experiment's challenger trainer) is picked up.
    """

    reader: LagReader
    topic: str
    groups: Callable[[], Mapping[str, str]]
    max_age_s: float = 2.0
    #: How long a caller waits for a read before it gets the previous one.
    wait_s: float = 1.5
    latest: LagReport = field(default_factory=LagReport)
    _executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="consumer-lag")
    )
    _inflight: asyncio.Future[LagReport] | None = None
    _read_started: float = 0.0

    def read_now(self) -> LagReport:
        """One blocking read; never raises (a failure keeps the previous rows)."""
        try:
            rows = self.reader.read(dict(self.groups()), self.topic)
            report = LagReport(time.time(), tuple(rows))
            if self.latest.error is not None:
                log.info("consumer_lag_read_recovered topic=%s", self.topic)
        except Exception as exc:  # a monitoring read must never take the scorer down
            error = describe(exc)
            if error != self.latest.error:  # one line per new problem, not one per poll
                log.warning("consumer_lag_read_failed topic=%s error=%s", self.topic, error)
            report = LagReport(self.latest.measured_at, self.latest.partitions, error)
        self.latest = report
        return report

    async def report(self) -> LagReport:
        """The latest read, refreshed first if it is older than ``max_age_s`` (waiting
        at most ``wait_s`` for it; a read still running then finishes in the background)."""
        inflight = self._inflight
        if inflight is None or inflight.done():
            if time.monotonic() - self._read_started < self.max_age_s:
                return self.latest
            self._read_started = time.monotonic()
            loop = asyncio.get_running_loop()
            inflight = self._inflight = loop.run_in_executor(self._executor, self.read_now)
        try:
            return await asyncio.wait_for(asyncio.shield(inflight), self.wait_s)
        except TimeoutError:
            return self.latest

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def scorer_groups(
    settings: Settings,
    challenger: Callable[[], str | None],
    served: Callable[[], str] | None = None,
) -> dict[str, str]:
    """role -> group id: the scorers, the trainer of the namespace served (after a
    promotion the promoted challenger's), and a running experiment's challenger trainer
    (``streamrec trainer --challenger`` commits under ``<trainer group>.<name>``)."""
    namespace = served() if served is not None else settings.model_name
    groups = {"scorer": settings.scorer_group, "trainer": settings.trainer_group_of(namespace)}
    name = challenger()
    if name:
        groups["challenger trainer"] = settings.trainer_group_of(name)
    return groups


def lag_metric_samples(report: LagReport) -> Sequence[tuple[dict[str, str], float]]:
    """(labels, lag) per group and partition, for a Prometheus gauge."""
    return [
        (
            {
                "role": row.role,
                "group": row.group,
                "topic": row.topic,
                "partition": str(row.partition),
            },
            float(row.lag),
        )
        for row in report.partitions
    ]
