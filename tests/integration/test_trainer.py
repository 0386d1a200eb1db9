from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from online_model.errors import ConfigurationError
from online_model.models.covisit import Covisitation
from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import SnapshotMeta
from streams.errors import LeaseLost, StoreUnavailable
from streams.io.codec import PAGE_VIEW, AvroCodec
from streams.io.producer import ReliableProducer, page_view
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.lease import TrainerLease
from streams.state.snapshot_store import SnapshotStore
from streams.testing import ListEventSource
from streams.trainer.loop import Trainer
from streams.trainer.run import run_trainer
from tests.support.topics import produce_page_views

T0 = 1_700_000_000_000


def views(start: int, n: int) -> list[dict[str, Any]]:
    return [
        page_view(f"u{i % 23}", f"p{(i * 7) % 41}", T0 + 1000 * i) for i in range(start, start + n)
    ]


def current_meta(store: SnapshotStore) -> SnapshotMeta | None:
    version = store.current_version()
    return None if version is None else store.read_meta(version)


def topic_end_offsets(settings: Settings, expected: int) -> dict[int, int]:
    """Next offset per partition, read from the records themselves (not watermarks)."""
    consumer = Consumer(settings.consumer_config(f"{settings.trainer_group}-check"))
    parts = (
        consumer.list_topics(settings.topic_page_views, timeout=10)
        .topics[settings.topic_page_views]
        .partitions
    )
    consumer.assign([TopicPartition(settings.topic_page_views, p, OFFSET_BEGINNING) for p in parts])
    ends: dict[int, int] = {}
    seen = 0
    deadline = time.monotonic() + 30
    try:
        while seen < expected and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None:
                    seen += 1
                    ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)
    finally:
        consumer.close()
    assert seen == expected
    return ends


def trainer_process(env: dict[str, str], log_path: Path) -> ChildProcess:
    return ChildProcess.streamrec(["--log-level", "info", "trainer"], env, log_path)


@pytest.fixture
def trainer_env(settings_env: dict[str, str]) -> dict[str, str]:
    return {
        **settings_env,
        "STREAMREC_SNAPSHOT_INTERVAL": "500ms",
        "STREAMREC_MODEL": "covisit",
        "STREAMREC_TRAINER_LEASE_TTL": "3s",
    }


@pytest.fixture
def processes() -> Iterator[list[ChildProcess]]:
    started: list[ChildProcess] = []
    yield started
    for proc in started:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.wait(10)


def produce_bad(settings: Settings, n: int) -> None:
    producer = ReliableProducer(settings)
    for i in range(n):
        producer.produce(settings.topic_page_views, b"\x01not avro", key=f"u{i}".encode())
    assert producer.flush().delivered == n


def test_sigkill_between_snapshots_then_restart_learns_each_event_exactly_once(
    settings: Settings,
    trainer_env: dict[str, str],
    tmp_path: Path,
    processes: list[ChildProcess],
    store: SnapshotStore,
) -> None:
    ensure_topics(settings, [settings.topic_page_views])
    n, m1, m2, bad = 400, 300, 200, 7
    assert produce_page_views(settings, views(0, n)).delivered == n
    produce_bad(settings, bad)

    # A long interval for the first run, so that the kill surely falls between snapshots.
    slow_env = {**trainer_env, "STREAMREC_SNAPSHOT_INTERVAL": "2.5s"}
    first = trainer_process(slow_env, tmp_path / "trainer-1.log")
    processes.append(first)
    meta = wait_for(
        lambda: (m := current_meta(store)) and m.events_seen == n and m,
        60,
        f"a snapshot with events_seen={n}",
    )
    assert meta.origin == "trainer" and meta.model_class == "online_model.covisit.Covisitation"
    versions_seen = [meta.version]
    # More events while it runs, learned but not yet in any snapshot when it is killed:
    # they must be neither lost nor learned twice.
    assert produce_page_views(settings, views(n, m1)).delivered == m1
    time.sleep(0.7)
    first.popen.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    killed_at = current_meta(store)
    assert killed_at is not None and killed_at.events_seen == n  # killed between snapshots
    versions_seen.append(killed_at.version)
    assert produce_page_views(settings, views(n + m1, m2)).delivered == m2

    second = trainer_process(trainer_env, tmp_path / "trainer-2.log")
    processes.append(second)
    total = n + m1 + m2
    meta = wait_for(
        lambda: (m := current_meta(store)) and m.events_seen >= total and m,
        60,
        f"a snapshot with events_seen={total}",
    )
    versions_seen.append(meta.version)
    assert "trainer resumed" in second.output()
    assert versions_seen == sorted(versions_seen) and versions_seen[0] < versions_seen[-1]

    started = time.monotonic()
    second.popen.send_signal(signal.SIGTERM)
    assert second.wait(10) == 0, second.output()
    assert time.monotonic() - started < 10

    final = store.load(store.current_version())  # type: ignore[arg-type]
    assert final.model.n_events_learned == total
    assert final.meta.events_seen == total
    assert final.trainer_state["bad_events"] == bad
    assert final.meta.offsets == {
        settings.topic_page_views: topic_end_offsets(settings, total + bad)
    }


def test_sigterm_publishes_a_final_snapshot_and_exits_zero(
    settings: Settings,
    trainer_env: dict[str, str],
    tmp_path: Path,
    processes: list[ChildProcess],
    store: SnapshotStore,
) -> None:
    ensure_topics(settings, [settings.topic_page_views])
    n = 250
    assert produce_page_views(settings, views(0, n)).delivered == n
    env = {**trainer_env, "STREAMREC_SNAPSHOT_INTERVAL": "10m"}  # no periodic snapshot
    proc = trainer_process(env, tmp_path / "trainer.log")
    processes.append(proc)
    wait_for(lambda: "trainer learning" in proc.output(), 60, "the trainer to start learning")
    time.sleep(3)  # 250 events take milliseconds; leave ample time to read them
    assert store.current_version() is None
    started = time.monotonic()
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0, proc.output()
    assert time.monotonic() - started < 10
    metas = store.list_versions()
    assert len(metas) == 1 and metas[0].events_seen == n
    lease = settings.redis_client().get(f"streamrec:{settings.model_name}:trainer-lease")
    assert lease is None  # released: a successor need not wait for the TTL


def test_a_second_trainer_waits_for_the_lease_then_takes_over(
    settings: Settings, store: SnapshotStore
) -> None:
    ensure_topics(settings, [settings.topic_page_views])
    n, m = 300, 150
    assert produce_page_views(settings, views(0, n)).delivered == n
    fast = Settings(**{**settings.__dict__, "snapshot_interval": 0.3})
    stop_a, stop_b = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def run(name: str, stop: threading.Event) -> None:
        results[name] = run_trainer(fast, "popularity", None, stop, lease_ttl=2.0)

    a = threading.Thread(target=run, args=("a", stop_a))
    a.start()
    wait_for(lambda: (meta := current_meta(store)) and meta.events_seen == n, 60, "trainer a")
    b = threading.Thread(target=run, args=("b", stop_b))
    b.start()
    time.sleep(2.5)  # longer than the lease TTL: a keeps refreshing it
    assert produce_page_views(settings, views(n, m)).delivered == m
    wait_for(lambda: (meta := current_meta(store)) and meta.events_seen == n + m, 60, "a learns m")
    stop_a.set()
    a.join(15)
    assert results["a"].events_learned == n + m
    assert produce_page_views(settings, views(n + m, m)).delivered == m
    wait_for(lambda: (meta := current_meta(store)) and meta.events_seen == n + 2 * m, 60, "b")
    stop_b.set()
    b.join(15)
    # b learned only what a had not: it resumed from a's final snapshot.
    assert results["b"].events_learned == m
    assert results["b"].resumed_from is not None
    assert store.load_current().model.n_events_learned == n + 2 * m  # type: ignore[union-attr]


class _FlakyStore(SnapshotStore):
    down = False

    def _check_up(self) -> None:
        if self.down:
            raise StoreUnavailable("redis unavailable: simulated outage")

    def publish_full(self, snap: Any, make_current: bool = True, state: Any = None) -> Any:
        self._check_up()
        return super().publish_full(snap, make_current, state)

    def publish_delta(self, *args: Any, **kwargs: Any) -> Any:
        self._check_up()
        return super().publish_delta(*args, **kwargs)


def test_redis_outage_keeps_learning_and_publishes_when_back(settings: Settings) -> None:
    codec = AvroCodec.bundled(PAGE_VIEW)
    values = [codec.encode(v) for v in views(0, 100)]
    source = ListEventSource(values[:50])
    store = _FlakyStore(
        settings.redis_client(), settings.model_name, settings.snapshot_key.get().encode()
    )
    trainer = Trainer(DecayedPopularity(), store, source, codec.decode, snapshot_interval=0.0)
    stop = threading.Event()
    thread = threading.Thread(target=trainer.run, args=(stop,))
    thread.start()
    wait_for(lambda: trainer.snapshots_published >= 1 and not trainer._dirty, 10, "a publish")
    store.down = True
    source.values.extend(values[50:])
    wait_for(
        lambda: trainer.events_learned == 100 and trainer.publish_failures >= 2,
        10,
        "learning during the outage",
    )
    published = trainer.snapshots_published
    assert store.read_meta(store.current_version()).events_seen == 50  # type: ignore[arg-type]
    store.down = False
    wait_for(lambda: trainer.snapshots_published > published, 10, "a publish after recovery")
    stop.set()
    thread.join(10)
    meta = store.read_meta(store.current_version())  # type: ignore[arg-type]
    assert meta.events_seen == 100 and meta.offsets == {"t": {0: 100}}
    assert source.commits[-1] == {"t": {0: 100}}


def test_a_trainer_that_loses_its_lease_stops_without_publishing(
    settings: Settings, store: SnapshotStore
) -> None:
    codec = AvroCodec.bundled(PAGE_VIEW)
    source = ListEventSource([codec.encode(v) for v in views(0, 20)])
    lease = TrainerLease(store.redis, settings.model_name, ttl_s=0.6)
    trainer = Trainer(
        DecayedPopularity(), store, source, codec.decode, snapshot_interval=0.1, lease=lease
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            trainer.run(threading.Event())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: trainer.snapshots_published >= 1, 10, "a first publish")
    store.redis.set(lease.key, "someone-else")  # another trainer holds the lease now
    source.values.extend(codec.encode(v) for v in views(20, 20))
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], LeaseLost)
    assert store.read_meta(store.current_version()).events_seen == 20  # type: ignore[arg-type]
    assert store.redis.get(lease.key) == b"someone-else"  # not released by the loser


def test_resuming_with_another_model_class_is_refused(
    settings: Settings, store: SnapshotStore
) -> None:
    codec = AvroCodec.bundled(PAGE_VIEW)
    first = Trainer(
        DecayedPopularity(), store, ListEventSource([codec.encode(views(0, 1)[0])]), codec.decode
    )
    first._resume(stop=threading.Event())
    first.source.assign(first.offsets)
    first.step()
    assert first.publish() is not None
    second = Trainer(Covisitation(), store, ListEventSource([]), codec.decode)
    with pytest.raises(ConfigurationError, match="holds a DecayedPopularity"):
        second.run(threading.Event())
