"""Consumer lag per partition: the computation, the cache, and the /metrics gauge (no
broker: a fake reader)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.io.consumer_lag import (
    LagMonitor,
    LagReader,
    PartitionLag,
    lag_rows,
    partition_lag,
    scorer_groups,
)
from streams.scorer.metrics import _LagCollector
from streams.settings import Settings


@pytest.mark.parametrize(
    ("committed", "low", "high", "lag"),
    [
        (0, 0, 0, 0),  # empty partition
        (10, 0, 10, 0),  # caught up
        (4, 0, 10, 6),  # six records not committed
        (None, 0, 10, 10),  # never committed: starts at the start
        (-1001, 3, 10, 7),  # librdkafka's "no offset" is the same
        (1, 5, 10, 5),  # committed below the log start: those records are gone
        (12, 0, 10, 0),  # a watermark that reads low is never a negative lag
    ],
)
def test_partition_lag(committed: int | None, low: int, high: int, lag: int) -> None:
    assert partition_lag(committed, low, high) == lag


def test_rows_per_group_and_partition_with_totals_per_role() -> None:
    rows = lag_rows(
        {"scorer": "s", "trainer": "t"},
        "pv",
        {1: (0, 8), 0: (2, 5)},
        {"s": {0: 5, 1: 6}, "t": {0: None, 1: -1001}},
    )
    assert [(r.role, r.partition, r.committed, r.high, r.lag) for r in rows] == [
        ("scorer", 0, 5, 5, 0),
        ("scorer", 1, 6, 8, 2),
        ("trainer", 0, None, 5, 3),
        ("trainer", 1, None, 8, 8),
    ]
    from streams.io.consumer_lag import LagReport

    report = LagReport(1.0, tuple(rows))
    assert report.totals() == {"scorer": 2, "trainer": 11}
    assert report.as_dict()["partitions"][0] == {
        "role": "scorer",
        "group": "s",
        "topic": "pv",
        "partition": 0,
        "committed": 5,
        "high": 5,
        "lag": 0,
    }


def test_groups_include_a_running_challengers_trainer() -> None:
    s = Settings(scorer_group="sg", trainer_group="tg")
    assert scorer_groups(s, lambda: None) == {"scorer": "sg", "trainer": "tg"}
    assert scorer_groups(s, lambda: "m.cand")["challenger trainer"] == "tg.m.cand"


class FakeReader(LagReader):
    def __init__(self) -> None:
        super().__init__(Settings())
        self.reads = 0
        self.fail: Exception | None = None
        self.gate: threading.Event | None = None

    def read(self, groups: Mapping[str, str], topic: str) -> list[PartitionLag]:
        if self.gate is not None:
            self.gate.wait(5)
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return [PartitionLag("scorer", groups["scorer"], topic, 0, 3, 3 + self.reads, self.reads)]


def test_monitor_caches_reads_and_keeps_the_last_rows_on_failure() -> None:
    reader = FakeReader()
    monitor = LagMonitor(reader, "pv", lambda: {"scorer": "sg"}, max_age_s=60.0)

    async def scenario() -> None:
        first = await monitor.report()
        assert first.partitions[0].lag == 1 and first.error is None
        assert (await monitor.report()) is first and reader.reads == 1  # cached
        monitor.max_age_s = 0.0
        reader.fail = RuntimeError("broker gone")
        failed = await monitor.report()
        assert failed.error == "Kafka did not answer: broker gone"
        assert failed.partitions == first.partitions
        assert failed.measured_at == first.measured_at

    asyncio.run(scenario())
    monitor.close()


def test_a_slow_read_never_holds_the_caller_longer_than_wait_s() -> None:
    reader = FakeReader()
    reader.gate = threading.Event()
    monitor = LagMonitor(reader, "pv", lambda: {"scorer": "sg"}, max_age_s=0.0, wait_s=0.05)

    async def scenario() -> None:
        slow = await monitor.report()  # the read is still waiting: the previous (none)
        assert slow.measured_at is None and slow.partitions == ()
        again = await monitor.report()  # no second read is queued behind the first
        assert again.partitions == ()
        reader.gate.set()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        assert reader.reads == 1
        assert (await monitor.report()).partitions  # a fresh read once the first is done

    asyncio.run(scenario())
    monitor.close()


def test_gauge_per_group_and_partition() -> None:
    reader = FakeReader()
    monitor = LagMonitor(reader, "pv", lambda: {"scorer": "sg"})
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_LagCollector(monitor))
    assert b"streamrec_consumer_lag{" not in generate_latest(registry)  # nothing read yet
    monitor.read_now()
    text = generate_latest(registry).decode()
    assert 'streamrec_consumer_lag{group="sg",partition="0",role="scorer",topic="pv"} 1.0' in text
    monitor.close()
