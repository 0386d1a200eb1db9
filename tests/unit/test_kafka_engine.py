"""The kafka scorer engine without a broker: its routes, and when it stores and commits.

The integration and reliability tests run real scorers on both engines; these pin the
ordering that makes the kafka engine at-least-once: a batch's offsets are stored only
after the runtime returned (every output acknowledged), and stored offsets are committed
synchronously before partitions are revoked and when the loop stops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from online_model.errors import ConfigurationError
from streams.scorer.kafka_engine import ConsumeLoop, web_server
from streams.settings import Settings


def _routes(web: Any) -> set[tuple[str, str]]:
    return {
        (route.resource.canonical, route.method)
        for route in web.web_app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def test_the_kafka_engine_serves_the_same_routes_and_middleware_as_the_faust_engine() -> None:
    from streams.scorer.app import create_app
    from streams.scorer.runtime import ScorerRuntime

    settings = Settings(insecure_dev=True)
    faust = create_app(settings)
    faust.web.init_server()
    kafka = web_server(settings, ScorerRuntime(settings), lambda: 0)
    assert _routes(kafka) == _routes(faust.web)
    assert "/recommendations/{user_id}" in {path for path, _ in _routes(kafka)}
    middlewares = [m.__qualname__ for m in kafka.web_app.middlewares]
    assert middlewares == [m.__qualname__ for m in faust.web.web_app.middlewares]  # type: ignore[attr-defined]
    assert middlewares  # the token check


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "page-views"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"u1"

    def value(self) -> bytes:
        return b"view"

    def headers(self) -> None:
        return None


class FakeConsumer:
    """Assigns partitions 0 and 1, hands out one batch, then revokes partition 1."""

    def __init__(self, events: list[Any], loop: ConsumeLoop | None = None) -> None:
        self.events = events
        self.calls = 0
        self.owner: ConsumeLoop | None = loop

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        self.calls += 1
        if self.calls == 1:
            self.on_assign(self, [TopicPartition("page-views", 0), TopicPartition("page-views", 1)])
            return [FakeMessage(0, 5), FakeMessage(1, 7), FakeMessage(0, 6)]
        if self.calls == 2:
            self.on_revoke(self, [TopicPartition("page-views", 1)])
            return []
        assert self.owner is not None
        self.owner.stop()
        return []

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self.events.append(("store", sorted((tp.partition, tp.offset) for tp in offsets)))

    def commit(self, asynchronous: bool = True) -> None:
        self.events.append(("commit", "async" if asynchronous else "sync"))

    def close(self) -> None:
        self.events.append(("close",))


class SlowRuntime:
    """Acknowledges a batch only after a while, recording when."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    async def deliver(self, batch: list[Any], send: Any, send_many: Any = None) -> None:
        self.events.append(("deliver", [(m.partition, m.offset) for m in batch]))
        await asyncio.sleep(0.2)
        self.events.append(("acked",))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def _run(
    consumer: FakeConsumer, runtime: Any, settings: Settings, loop: asyncio.AbstractEventLoop
) -> ConsumeLoop:
    """Run a ConsumeLoop over ``consumer`` until the consumer stops it; the loop."""
    delivery = type("Delivery", (), {"send": None, "send_many": None})()
    consume = ConsumeLoop(settings, runtime, delivery, loop, consumer_factory=lambda c: consumer)
    consumer.owner = consume
    consume.start()
    assert consume.finished.wait(10)
    return consume


def test_offsets_are_stored_after_the_acks_and_committed_before_a_revoke_and_at_stop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    events: list[Any] = []
    consume = _run(FakeConsumer(events), SlowRuntime(events), Settings(), loop)
    assert consume.failure is None
    assert consume.drained.is_set()
    # An asynchronous commit may come between (one is due every 0.2 s).
    assert [e for e in events if e != ("commit", "async")] == [
        ("deliver", [(0, 5), (1, 7), (0, 6)]),
        ("acked",),
        # the next offset to read per partition, only once the broker acknowledged
        ("store", [(0, 7), (1, 8)]),
        ("commit", "sync"),  # before partition 1 goes to another scorer
        ("close",),
    ], events
    assert consume.assigned() == 1


class TwoBatchConsumer(FakeConsumer):
    """Hands out two batches of partition 0 in a row, then stops its owner."""

    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        self.calls += 1
        if self.calls == 1:
            self.on_assign(self, [TopicPartition("page-views", 0)])
            return [FakeMessage(0, 1), FakeMessage(0, 2)]
        if self.calls == 2:
            return [FakeMessage(0, 3)]
        assert self.owner is not None
        self.owner.stop()
        return []


class FirstSlowerRuntime:
    """The first batch is acknowledged after the second one."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events
        self.n = 0

    async def deliver(self, batch: list[Any], send: Any, send_many: Any = None) -> None:
        self.n += 1
        first = [m.offset for m in batch]
        self.events.append(("deliver", first))
        await asyncio.sleep(0.4 if self.n == 1 else 0.05)
        self.events.append(("acked", first))


def test_the_next_batch_is_scored_while_the_last_awaits_its_acks_and_offsets_go_in_order(
    loop: asyncio.AbstractEventLoop,
) -> None:
    events: list[Any] = []
    consume = _run(TwoBatchConsumer(events), FirstSlowerRuntime(events), Settings(), loop)
    assert consume.failure is None
    assert [e for e in events if e[0] != "commit"] == [
        ("deliver", [1, 2]),
        ("deliver", [3]),  # taken before the first batch was acknowledged
        ("acked", [3]),
        ("acked", [1, 2]),
        # the second batch's offset is stored only after the first's acknowledgement
        ("store", [(0, 3)]),
        ("store", [(0, 4)]),
        ("close",),
    ], events
    assert events.index(("commit", "sync")) > events.index(("store", [(0, 4)]))


def test_one_batch_in_flight_takes_the_next_batch_only_after_the_acks(
    loop: asyncio.AbstractEventLoop,
) -> None:
    events: list[Any] = []
    serial = Settings(batches_in_flight=1)
    _run(TwoBatchConsumer(events), FirstSlowerRuntime(events), serial, loop)
    assert [e for e in events if e[0] in ("deliver", "acked", "store")] == [
        ("deliver", [1, 2]),
        ("acked", [1, 2]),
        ("store", [(0, 3)]),
        ("deliver", [3]),
        ("acked", [3]),
        ("store", [(0, 4)]),
    ], events


def test_batches_in_flight_is_read_from_the_environment_and_must_be_positive() -> None:
    assert Settings.from_env({"STREAMREC_BATCHES_IN_FLIGHT": "2"}).batches_in_flight == 2
    with pytest.raises(ConfigurationError, match="batches_in_flight must be at least 1"):
        Settings.from_env({"STREAMREC_BATCHES_IN_FLIGHT": "0"})
