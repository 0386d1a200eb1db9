"""The scorers the real one is compared with, run as ``python -m bench.agents <kind>``.

``naive``
    A Faust agent doing the same work as the real scorer (same :class:`ScoringCore`,
    same Redis history store, same model snapshot) one event at a time, with
    ``await topic.send``: one Redis read and one write round trip per event.
``ceiling``
    A bare Faust agent, ``stream.take()`` + ``send_soon`` and no work: what Faust's
    per-event machinery allows on this machine.
``plain``
    A confluent-kafka consume -> ScoringCore -> produce loop with the synchronous
    history store, acknowledged per batch before committing (the same at-least-once
    contract as the real scorer).

The Faust apps use the same broker/consumer/producer settings, fetch-wait tuning and
uvloop as :func:`streams.scorer.app.create_app`, so only the agent differs. Configuration
comes from the environment, like ``streamrec scorer``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from streams.io.dlq import RawMessage
from streams.io.topics import ensure_topics
from streams.scorer.core import ScoringCore
from streams.scorer.model_holder import ModelHolder
from streams.scorer.runtime import ScorerRuntime
from streams.settings import Settings
from streams.state.history import HistoryStore
from streams.wiring import snapshot_store

log = logging.getLogger(__name__)


def faust_app(settings: Settings) -> Any:
    """A Faust app configured like the scorer's (see :func:`streams.scorer.app.faust_app`)."""
    from streams.scorer.app import faust_app as scorer_faust_app

    return scorer_faust_app(settings)


def naive_app(settings: Settings) -> Any:
    app = faust_app(settings)
    rt = ScorerRuntime(settings)
    if not rt.holder.refresh(rt.store):
        raise SystemExit(f"no snapshot of model {settings.model_name} to serve")
    page_views = app.topic(settings.topic_page_views, partitions=settings.partitions)
    out = app.topic(settings.topic_recommendations, partitions=settings.partitions)

    @app.agent(page_views, name="naive-score")
    async def score(stream: Any) -> None:
        async for event in stream.events():
            views, _ = rt.core.decode([event.message])
            state = await rt.history.read(view.user for view in views)
            batch = rt.core.score(views, state)
            for key, value in batch.recommendations:
                await out.send(key=key, value=value)
            await rt.history.write(batch.update)

    return app


def ceiling_app(settings: Settings) -> Any:
    app = faust_app(settings)
    page_views = app.topic(settings.topic_page_views, partitions=settings.partitions)
    out = app.topic(settings.topic_recommendations, partitions=settings.partitions)

    @app.agent(page_views, name="bare-forward")
    async def forward(stream: Any) -> None:
        async for values in stream.take(settings.batch_size, within=settings.batch_wait_s):
            for value in values:
                out.send_soon(value=value)

    return app


def run_faust(app: Any) -> None:
    import faust

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    worker = faust.Worker(
        app, loglevel="warn", quiet=True, redirect_stdouts=False, override_logging=False
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    worker.execute_from_commandline()


def run_plain(settings: Settings, stop: threading.Event) -> int:
    """Consume, score and produce with confluent-kafka until ``stop``; return events."""
    from confluent_kafka import Consumer, Producer

    holder = ModelHolder()
    if not holder.refresh(snapshot_store(settings)):
        raise SystemExit(f"no snapshot of model {settings.model_name} to serve")
    core = ScoringCore(
        holder,
        settings.model_name,
        settings.k,
        settings.history_length,
        settings.max_event_bytes,
        settings.schema_registry_url,
    )
    history = HistoryStore(
        settings.redis_client(),
        settings.model_name,
        settings.history_length,
        settings.history_ttl_s,
    )
    consumer = Consumer(settings.consumer_config(settings.scorer_group))
    producer = Producer(settings.producer_config(**{"linger.ms": 2}))
    consumer.subscribe([settings.topic_page_views])
    topic = settings.topic_recommendations
    done = 0
    try:
        while not stop.is_set():
            msgs = [m for m in consumer.consume(settings.batch_size, 0.1) if m.error() is None]
            if not msgs:
                continue
            raw = [
                RawMessage(m.topic(), m.partition(), m.offset(), m.key(), m.value()) for m in msgs
            ]  # type: ignore[arg-type]
            views, _ = core.decode(raw)
            batch = core.score(views, history.read(view.user for view in views))
            for key, value in batch.recommendations:
                while True:
                    try:
                        producer.produce(topic, value, key)
                        break
                    except BufferError:
                        producer.poll(0.05)
            history.write(batch.update)
            producer.flush()  # acknowledged before the offsets are committed
            consumer.commit(asynchronous=True)
            done += len(msgs)
    finally:
        consumer.close()
    return done


def main(argv: list[str]) -> None:
    kind = argv[0] if argv else ""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = Settings.from_env()
    ensure_topics(settings)
    if kind == "naive":
        run_faust(naive_app(settings))
    elif kind == "ceiling":
        run_faust(ceiling_app(settings))
    elif kind == "plain":
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        run_plain(settings, stop)
    else:
        raise SystemExit("usage: python -m bench.agents naive|ceiling|plain")


if __name__ == "__main__":
    main(sys.argv[1:])
