"""The scoring core and the scorer runtime, with fakes for Kafka and the snapshot store."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from dataclasses import dataclass
from typing import Any

from online_model.errors import SnapshotVerificationError
from online_model.models.popularity import DecayedPopularity
from streams.io.codec import PAGE_VIEW, RECOMMENDATION, AvroCodec
from streams.io.dlq import RawMessage
from streams.io.producer import page_view
from streams.scorer.core import ScoringCore
from streams.scorer.model_holder import ModelHolder
from streams.scorer.runtime import ScorerRuntime
from streams.settings import Settings
from streams.state.history import UserState

PV = AvroCodec.bundled(PAGE_VIEW)
REC = AvroCodec.bundled(RECOMMENDATION)


def msg(offset: int, value: bytes | None, key: bytes | None) -> RawMessage:
    return RawMessage("page-views", 0, offset, key, value)


def view_msg(offset: int, user: str, page: str, ts: int = 1_000) -> RawMessage:
    record = page_view(user, page, ts, event_id=f"e{offset}")
    return msg(offset, PV.encode(record), user.encode())


def test_decode_sorts_good_from_bad() -> None:
    core = ScoringCore(ModelHolder(), "m", max_event_bytes=2048)
    good = view_msg(0, "u1", "p1")
    unknown_id = good.value[:1] + struct.pack(">I", 7) + good.value[5:]  # type: ignore[index]
    bad = [
        msg(1, b"", b"u1"),
        msg(2, b"\x00\x01", b"u1"),
        msg(3, b"\x07" + good.value[1:], b"u1"),  # type: ignore[index]
        msg(4, unknown_id, b"u1"),
        msg(5, good.value[:-2], b"u1"),  # type: ignore[index]
        msg(6, good.value + b"x" * 3000, b"u1"),  # type: ignore[operator]
        msg(7, good.value, b"someone-else"),
        msg(8, None, b"u1"),
    ]
    views, dead = core.decode([good, *bad])
    assert [v.record["event_id"] for v in views] == ["e0"]
    assert [d.message.offset for d in dead] == list(range(1, 9))
    reasons = [d.reason for d in dead]
    assert reasons == [
        "too_short",
        "too_short",
        "bad_magic_byte",
        "unknown_schema_id",
        "corrupt_body",
        "too_large",
        "key_mismatch",
        "too_short",
    ]
    headers = dict(dead[0].headers())
    assert headers["streamrec.original.offset"] == b"1"
    assert headers["streamrec.error.class"] == b"MessageTooShort"


def test_score_excludes_history_and_updates_state() -> None:
    holder = ModelHolder()
    for page in ["a", "b", "c", "d"] * 3:
        holder.fallback.learn_one("x", page, x={"ts": 1})
    core = ScoringCore(holder, "m", k=3)
    views, _ = core.decode([view_msg(0, "u1", "a"), view_msg(1, "u1", "b")])
    batch = core.score(views, UserState(histories={"u1": ["c"]}, served={"u1": ["a", "z"]}))
    recs = [REC.decode(value) for _, value in batch.recommendations]
    assert [r["event_id"] for r in recs] == ["e0", "e1"]
    assert [i["page_id"] for i in recs[1]["items"]] == ["d"]  # a, b, c already seen
    assert batch.update.appends == {"u1": ["a", "b"]}
    assert batch.update.served == {"u1": ["d"]}
    # "a" was in the list served before the first view (rank 1); the list served after
    # it was [d, b] (a and c excluded; d is the most recent), so "b" is a hit at rank 2.
    assert (batch.quality.judged, batch.quality.hits) == (2, 2)
    assert batch.quality.reciprocal_rank == 1.5
    views, _ = core.decode([view_msg(2, "u1", "zz")])
    assert core.score(views, UserState(served={"u1": ["d"]})).quality.hits == 0
    assert recs[0]["model_version"] == 0


class FakeStore:
    channel = "c"

    def __init__(self) -> None:
        self.version: int | None = None
        self.snapshots: dict[int, Any] = {}

    def current_version(self) -> int | None:
        return self.version

    def load(self, version: int, held: Any = None) -> Any:
        snap = self.snapshots[version]
        if isinstance(snap, Exception):
            raise snap
        return snap


@dataclass
class Meta:
    version: int
    created_at: float = 0.0
    model_class: str = "DecayedPopularity"
    events_seen: int = 0


@dataclass
class Snap:
    meta: Meta
    model: Any


def test_runtime_sends_after_scoring_and_swaps_models() -> None:
    store = FakeStore()
    settings = Settings(redis_url="redis://127.0.0.1:1/0", model_name="m")
    runtime = ScorerRuntime(settings, store=store)
    sent: list[tuple[str, bytes | None, list[Any] | None]] = []

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        sent.append((topic, key, headers))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def scenario() -> None:
        await runtime.process([view_msg(0, "u1", "a"), msg(1, b"", b"u1")], send)
        model = DecayedPopularity()
        model.learn_one("u", "zzz")
        store.snapshots = {1: Snap(Meta(1), model), 2: SnapshotVerificationError("bad mac")}
        store.version = 1
        assert await runtime.refresh_model()
        store.version = 2
        assert not await runtime.refresh_model()
        batch = await runtime.process([view_msg(2, "u2", "b")], send)
        assert batch.version == 1

    asyncio.run(scenario())
    assert [t for t, _, _ in sent] == ["recommendations", "page-views.dlq", "recommendations"]
    assert runtime.holder.rejected == 1 and runtime.holder.current.version == 1
    text = runtime.metrics.render().decode()
    assert "streamrec_events_scored_total 2.0" in text
    assert 'streamrec_dead_letters_total{reason="too_short"} 1.0' in text
    assert "streamrec_snapshots_rejected 1.0" in text
    assert "streamrec_redis_errors_total" in text


def test_a_refresh_asked_for_during_a_refresh_runs_when_it_ends() -> None:
    runtime = ScorerRuntime(
        Settings(redis_url="redis://127.0.0.1:1/0", model_name="m"), store=FakeStore()
    )
    loading, release = threading.Event(), threading.Event()
    loads: list[int] = []

    def load_model() -> bool:
        loads.append(1)
        loading.set()
        release.wait(5)
        return len(loads) == 2  # the second look finds the version published meanwhile

    runtime.load_model = load_model  # type: ignore[method-assign]
    runtime.follow_experiment = lambda: None  # type: ignore[method-assign]

    async def scenario() -> tuple[bool, bool]:
        first = asyncio.ensure_future(runtime.refresh_model())
        await asyncio.get_running_loop().run_in_executor(None, loading.wait, 5)
        second = await runtime.refresh_model()  # a hint while the first one loads
        release.set()
        return await first, second

    swapped, second = asyncio.run(scenario())
    assert not second and swapped and len(loads) == 2


def test_deliver_retries_a_refused_batch_until_the_broker_takes_it() -> None:
    runtime = ScorerRuntime(
        Settings(redis_url="redis://127.0.0.1:1/0", model_name="m"), store=FakeStore()
    )
    attempts: list[int] = []

    async def flaky_send(topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        attempts.append(1)
        if len(attempts) <= 2:
            raise RuntimeError("broker unavailable")
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    batch = asyncio.run(runtime.deliver([view_msg(0, "u1", "a")], flaky_send))
    assert len(batch.recommendations) == 1 and len(attempts) == 3
    assert "streamrec_send_retries_total 2.0" in runtime.metrics.render().decode()


def test_stop_with_an_undelivered_batch_abandons_instead_of_committing() -> None:
    runtime = ScorerRuntime(
        Settings(redis_url="redis://127.0.0.1:1/0", model_name="m"), store=FakeStore()
    )
    abandoned: list[bool] = []

    async def dead_send(topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        raise RuntimeError("broker unavailable")

    async def scenario() -> None:
        task = asyncio.ensure_future(
            runtime.deliver(
                [view_msg(0, "u1", "a")],
                dead_send,
                abandon=lambda: abandoned.append(True),
                grace_s=0.3,
            )
        )
        await asyncio.sleep(0.2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert abandoned == [True]


def test_stop_lets_the_batch_in_flight_finish() -> None:
    runtime = ScorerRuntime(
        Settings(redis_url="redis://127.0.0.1:1/0", model_name="m"), store=FakeStore()
    )
    abandoned: list[bool] = []
    acked: list[str] = []

    async def slow_send(topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        await asyncio.sleep(0.2)
        acked.append(topic)
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def scenario() -> None:
        task = asyncio.ensure_future(
            runtime.deliver(
                [view_msg(0, "u1", "a"), view_msg(1, "u2", "b")],
                slow_send,
                abandon=lambda: abandoned.append(True),
            )
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert acked == ["recommendations", "recommendations"] and abandoned == []


def test_send_many_carries_the_recommendations_and_send_the_dead_letters() -> None:
    runtime = ScorerRuntime(
        Settings(redis_url="redis://127.0.0.1:1/0", model_name="m"), store=FakeStore()
    )
    singles: list[str] = []
    many: list[tuple[str, list[bytes | None]]] = []

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        singles.append(topic)
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def send_many(topic: str, records: Any) -> Any:
        many.append((topic, [key for key, _ in records]))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    batch = asyncio.run(
        runtime.deliver(
            [view_msg(0, "u1", "a"), msg(1, b"", b"u1"), view_msg(2, "u2", "b")],
            send,
            send_many=send_many,
        )
    )
    assert len(batch.recommendations) == 2
    assert many == [("recommendations", [b"u1", b"u2"])]
    assert singles == ["page-views.dlq"]


def test_send_partitioned_keys_records_like_send_and_keeps_their_order() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from streams.scorer.app import send_partitioned

    class Builder:
        def __init__(self, room: int) -> None:
            self.keys: list[bytes | None] = []
            self.room = room

        def append(self, *, timestamp: Any, key: bytes | None, value: bytes | None) -> Any:
            if len(self.keys) >= self.room:
                return None
            self.keys.append(key)
            return object()

    class Metadata:
        def partitions_for_topic(self, topic: str) -> set[int]:
            return {0, 1, 2}

        available_partitions_for_topic = partitions_for_topic

    class Client:
        async def _wait_on_metadata(self, topic: str) -> None:
            return None

    sent: list[tuple[int, list[bytes | None]]] = []

    class Aio:
        client = Client()
        _metadata = Metadata()
        _partitioner = DefaultPartitioner()

        def create_batch(self) -> Builder:
            return Builder(room=3)

        async def send_batch(self, batch: Builder, topic: str, *, partition: int) -> Any:
            sent.append((partition, batch.keys))
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(partition)
            return fut

    class Producer:
        def _ensure_producer(self) -> Aio:
            return Aio()

    keys = [f"user-{i % 7}".encode() for i in range(40)]

    async def scenario() -> list[Any]:
        done = await send_partitioned(Producer(), "recommendations", [(k, b"v") for k in keys])
        return await done

    asyncio.run(scenario())
    partition_of = {k: DefaultPartitioner()(k, [0, 1, 2], [0, 1, 2]) for k in keys}
    assert sorted(k for _, batch in sent for k in batch) == sorted(keys)
    for partition, batch in sent:
        assert all(partition_of[k] == partition for k in batch) and len(batch) <= 3
    for partition in {0, 1, 2}:
        in_order = [k for p, batch in sent if p == partition for k in batch]
        assert in_order == [k for k in keys if partition_of[k] == partition]


class SlowHistory:
    """A history store whose reads take a while; it records the order of the calls."""

    errors = 0

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def read(self, users: Any, shadow: bool = False) -> UserState:
        users = list(users)
        self.calls.append(f"read {users}")
        await asyncio.sleep(0.05)
        return UserState()

    async def write(self, update: Any) -> None:
        self.calls.append("write")
        await asyncio.sleep(0)


def test_batches_in_flight_together_read_histories_only_after_the_batch_before_wrote() -> None:
    history = SlowHistory()
    runtime = ScorerRuntime(
        Settings(redis_url="redis://127.0.0.1:1/0", model_name="m"),
        store=FakeStore(),
        history=history,  # type: ignore[arg-type]
    )
    order: list[bytes | None] = []

    async def send_many(topic: str, records: Any) -> Any:
        order.extend(key for key, _ in records)
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def scenario() -> None:
        no_send: Any = None  # every output goes through send_many
        await asyncio.gather(
            runtime.process([view_msg(0, "u1", "a")], no_send, send_many),
            runtime.process([view_msg(1, "u2", "b")], no_send, send_many),
        )

    asyncio.run(scenario())
    assert history.calls == ["read ['u1']", "write", "read ['u2']", "write"]
    assert order == [b"u1", b"u2"]
