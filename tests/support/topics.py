"""Putting page views on a topic and reading what comes out."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, Message

from streams.io.codec import PAGE_VIEW, RECOMMENDATION, AvroCodec
from streams.io.producer import DeliveryReport, ReliableProducer
from streams.settings import Settings

REC = AvroCodec.bundled(RECOMMENDATION)
PV = AvroCodec.bundled(PAGE_VIEW)


def produce_page_views(
    settings: Settings,
    views: Iterable[dict[str, Any]],
    topic: str | None = None,
    producer: ReliableProducer | None = None,
    flush_timeout: float = 60.0,
) -> DeliveryReport:
    """Encode and send page views keyed by user_id, timestamped with their view time."""
    codec = AvroCodec.bundled(PAGE_VIEW, settings.schema_registry_url)
    producer = producer or ReliableProducer(settings)
    target = topic or settings.topic_page_views
    for view in views:
        producer.produce(
            target, codec.encode(view), key=view["user_id"].encode(), timestamp_ms=int(view["ts"])
        )
    return producer.flush(flush_timeout)


class TopicReader:
    """Reads a topic from the beginning with a fresh consumer group."""

    def __init__(self, settings: Settings, topic: str, group: str) -> None:
        self.consumer = Consumer(settings.consumer_config(group, **{"fetch.wait.max.ms": 50}))
        self.consumer.subscribe([topic])
        self.messages: list[Message] = []

    def read_until(self, done: Callable[[list[Message]], bool], timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        while not done(self.messages) and time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, 0.5):
                if msg.error() is None:
                    self.messages.append(msg)
        return self.messages

    def close(self) -> None:
        self.consumer.close()


@dataclasses.dataclass
class Answers:
    recommendations: list[dict[str, Any]]
    wanted: set[str]

    @property
    def ids(self) -> list[str]:
        return [r["event_id"] for r in self.recommendations]

    @property
    def lost(self) -> set[str]:
        return self.wanted - set(self.ids)

    @property
    def duplicates(self) -> int:
        ids = [i for i in self.ids if i in self.wanted]
        return len(ids) - len(set(ids))


def read_answers(
    settings: Settings,
    wanted: set[str],
    timeout: float = 45.0,
    group: str | None = None,
    at_least: int = 0,
) -> Answers:
    """Every Recommendation on the topic, read until each of ``wanted`` is answered and
    at least ``at_least`` were read (then a little longer, to catch late duplicates), or
    until ``timeout``."""
    reader = TopicReader(
        settings,
        settings.topic_recommendations,
        group or f"answers-{settings.model_name}-{time.monotonic_ns()}",
    )
    try:

        def done(messages: list[Any]) -> bool:
            return len(messages) >= at_least and wanted <= {
                REC.decode(m.value())["event_id"] for m in messages
            }

        reader.read_until(done, timeout)
        extra_until = time.monotonic() + 1.0
        while time.monotonic() < extra_until:
            reader.read_until(lambda _: False, 0.5)
        return Answers([REC.decode(m.value()) for m in reader.messages], wanted)
    finally:
        reader.close()
