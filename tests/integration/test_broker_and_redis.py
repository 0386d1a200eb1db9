from __future__ import annotations

import time

from confluent_kafka import Consumer

from streams.io.codec import PAGE_VIEW, AvroCodec
from streams.io.producer import page_view
from streams.io.topics import ensure_topics
from streams.settings import Settings
from tests.support.topics import produce_page_views


def test_thousand_avro_page_views_round_trip_through_a_consumer_group(settings: Settings) -> None:
    counts = ensure_topics(settings, [settings.topic_page_views])
    assert counts == {settings.topic_page_views: settings.partitions}
    views = [page_view(f"u{i % 37}", f"p{i % 101}", 1_700_000_000_000 + i) for i in range(1000)]
    report = produce_page_views(settings, views)
    assert (report.sent, report.delivered, report.failed) == (1000, 1000, 0)

    codec = AvroCodec.bundled(PAGE_VIEW)
    consumer = Consumer(settings.consumer_config(f"{settings.scorer_group}-rt"))
    consumer.subscribe([settings.topic_page_views])
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(seen) < 1000 and time.monotonic() < deadline:
            for msg in consumer.consume(500, 1.0):
                assert msg.error() is None, msg.error()
                record = codec.decode(msg.value())
                assert msg.key() == record["user_id"].encode()
                seen.append(record["event_id"])
    finally:
        consumer.close()
    assert sorted(seen) == sorted(v["event_id"] for v in views)  # all present, each once


def test_redis_set_get_through_configured_client(settings: Settings) -> None:
    client = settings.redis_client()
    key = f"{settings.model_name}:probe"
    client.set(key, b"value", ex=60)
    assert client.get(key) == b"value"
    client.delete(key)
    assert client.get(key) is None
