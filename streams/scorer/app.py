"""The Faust scorer app: the agent on ``page-views``, hot-swap, and the REST views.

The agent takes batches of events (``stream.take_events``) and hands them to
:class:`~streams.scorer.runtime.ScorerRuntime`; the events are acknowledged (and so
their offsets become committable) only after every recommendation and dead letter of
the batch was acknowledged by the broker: at-least-once end to end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import faust

from streams.scorer import auth, not_found, overload
from streams.scorer.faust_stalls import FaustStallWatch
from streams.scorer.openapi import roles
from streams.scorer.runtime import ScorerRuntime
from streams.scorer.web import add_views
from streams.settings import Settings

log = logging.getLogger(__name__)


def tune_fetch_wait(max_wait_ms: int) -> None:
    """Make Faust's worker consumer wait at most ``max_wait_ms`` for a fetch.

    Faust hard-codes ``fetch_max_wait_ms=1500`` for its aiokafka consumer. A broker that
    holds a fetch for its whole wait (the embedded Tansu does, measured: p50 386 ms at
    1500, 4 ms at 10) then adds that wait to every recommendation's latency. The value
    is read when the consumer starts, so setting it on the new consumer is enough.
    """
    from faust.transport.drivers import aiokafka as driver

    original = driver.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "__streamrec_tuned__", False):
        original = original.__wrapped__  # type: ignore[attr-defined]

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    create.__wrapped__ = original  # type: ignore[attr-defined]
    create.__streamrec_tuned__ = True  # type: ignore[attr-defined]
    setattr(driver.AIOKafkaConsumerThread, "_create_worker_consumer", create)  # noqa: B010


async def send_partitioned(
    producer: Any,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None]],
) -> Awaitable[Any]:
    """Enqueue ``records`` on Faust's aiokafka ``producer`` as per-partition batches.

    Returns an awaitable that resolves when the broker acknowledged every batch. A
    batch that fills up (``max_batch_size``) is submitted and a new one started; aiokafka
    queues a partition's batches in order.
    """
    from aiokafka.errors import KafkaError
    from faust.exceptions import ProducerSendError

    aio = producer._ensure_producer()
    try:
        await aio.client._wait_on_metadata(topic)
        metadata = aio._metadata
        every = list(metadata.partitions_for_topic(topic))
        available = list(metadata.available_partitions_for_topic(topic))
        partitioner = aio._partitioner
        builders: dict[int, Any] = {}
        futures: list[Awaitable[Any]] = []
        for key, value in records:
            partition = partitioner(key, every, available)
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = aio.create_batch()
            if builder.append(timestamp=None, key=key, value=value) is None:
                futures.append(await aio.send_batch(builder, topic, partition=partition))
                builder = builders[partition] = aio.create_batch()
                builder.append(timestamp=None, key=key, value=value)
        for partition, builder in builders.items():
            futures.append(await aio.send_batch(builder, topic, partition=partition))
    except KafkaError as exc:
        raise ProducerSendError(f"Error while sending: {exc!r}") from exc
    return asyncio.gather(*futures)


class _BadRequestsInOneLine(logging.Filter):
    """aiohttp answers a malformed request (e.g. a request line over 8190 bytes, a 10 KB
    user id) with a plain 400 and logs a traceback for it; a client's mistake is worth one
    warning line, not a traceback per request."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import BadHttpMessage

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            record.msg = "bad_http_request status=400 error=%r"
            record.args = (str(exc.message)[:200],)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


logging.getLogger("aiohttp.server").addFilter(_BadRequestsInOneLine())


def faust_app(settings: Settings, rest_limit: overload.InFlightLimit | None = None) -> faust.App:
    """A Faust app with the scorer's tuning, and no agents yet (the bench reuses it).

    ``rest_limit`` bounds the recommendation requests in progress (default: a new one of
    ``STREAMREC_REST_MAX_IN_FLIGHT``; the scorer passes the one its metrics show)."""
    limit = overload.InFlightLimit.from_settings(settings) if rest_limit is None else rest_limit
    session_s = settings.session_timeout_ms / 1000.0
    Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
    tune_fetch_wait(settings.fetch_wait_ms)
    return faust.App(
        settings.scorer_group,
        broker=settings.faust_broker_url(),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        store="memory://",
        datadir=str(Path(settings.state_dir) / "faust"),
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_in_thread=False,
        # Every request passes the token check first (a no-op without tokens); past the
        # bound on recommendation requests in progress, 503 at once; a request that
        # matches no route then answers 404/405 as JSON, like every other error.
        web_application_options={
            "middlewares": [
                auth.middleware(auth.ApiTokens.from_settings(settings), roles()),
                *overload.middlewares(limit),
                not_found.middleware(),
            ]
        },
        # Faust's /router and /table views would expose routing and table contents.
        web_router_enabled=False,
        web_tables_enabled=False,
        broker_session_timeout=session_s,
        broker_heartbeat_interval=max(0.5, session_s / 4),
        broker_request_timeout=max(30.0, session_s * 2),
        broker_rebalance_timeout=max(30.0, session_s * 2),
        broker_commit_interval=1.0,
        broker_max_poll_records=max(1000, settings.batch_size * 2),
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        producer_linger=0.002,
        producer_acks=-1,
        web_metrics_enabled=False,
    )


def create_app(settings: Settings, runtime: ScorerRuntime | None = None) -> faust.App:
    """Build the scorer app for ``settings`` (one per process)."""
    rest_limit = overload.InFlightLimit.from_settings(settings)
    app = faust_app(settings, rest_limit)
    rt = runtime or ScorerRuntime(settings)
    rt.metrics.watch_rest_limit(rest_limit)
    app.streamrec = rt  # type: ignore[attr-defined]
    page_views = app.topic(settings.topic_page_views, partitions=settings.partitions)

    async def send(
        topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> Any:
        return await app.producer.send(topic, key, value, None, None, headers)

    async def send_many(
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None]],
    ) -> Awaitable[Any]:
        """One aiokafka record batch per partition instead of one ``send`` per record.

        The partition is the one ``send`` would pick (the producer's partitioner, by
        default aiokafka's Java-compatible murmur2 of the key), so per-user order holds.
        """
        return await send_partitioned(app.producer, topic, records)

    stalls = FaustStallWatch(app, settings)

    @app.agent(page_views, name="score-page-views")
    async def score(stream: faust.StreamT) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined]  # missing from StreamT
            settings.batch_size, within=settings.batch_wait_s
        )
        async for events in batches:
            stalls.received(len(events))
            await rt.deliver([event.message for event in events], send, send_many=send_many)

    @app.timer(interval=1.0, on_leader=False)
    async def watch_for_stalls() -> None:
        await stalls.check()

    @app.task
    async def first_model_load() -> None:
        """At once, not one poll interval later: readiness waits for it."""
        await rt.refresh_model()

    @app.timer(interval=settings.model_poll_interval, on_leader=False)
    async def poll_model() -> None:
        await rt.refresh_model()

    @app.task
    async def listen_for_snapshots() -> None:
        await rt.listen_for_snapshots(lambda: bool(app.should_stop))

    add_views(app, settings, rt, consumer_health=stalls.health)
    return app
