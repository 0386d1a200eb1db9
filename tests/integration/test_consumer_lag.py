"""Consumer lag read from the real broker: committed offsets against watermarks."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.io.consumer_lag import LagReader
from streams.io.topics import ensure_topics
from streams.settings import Settings


def _commit(settings: Settings, group: str, offsets: dict[int, int]) -> None:
    consumer = Consumer(settings.consumer_config(group))
    try:
        tps = [TopicPartition(settings.topic_page_views, p, o) for p, o in offsets.items()]
        consumer.commit(offsets=tps, asynchronous=False)
    finally:
        consumer.close()


def test_lag_is_what_each_group_has_not_committed(settings: Settings) -> None:
    topic = settings.topic_page_views
    ensure_topics(settings, [topic], partitions=2)
    producer = Producer(settings.producer_config(**{"linger.ms": 0}))
    produced = {0: 7, 1: 4}
    for partition, n in produced.items():
        for i in range(n):
            # One record per request: the embedded broker's high watermark is the base
            # offset of the last batch + 1, exact only for one-record batches.
            producer.produce(topic, f"v{i}".encode(), partition=partition)
            producer.flush(10)
    groups = {"scorer": settings.scorer_group, "trainer": settings.trainer_group}
    reader = LagReader(settings)

    def lags() -> dict[tuple[str, int], tuple[int | None, int, int]]:
        rows = reader.read(groups, topic)
        return {(r.role, r.partition): (r.committed, r.high, r.lag) for r in rows}

    # Nobody committed yet: every record is lag.
    assert lags() == {
        ("scorer", 0): (None, 7, 7),
        ("scorer", 1): (None, 4, 4),
        ("trainer", 0): (None, 7, 7),
        ("trainer", 1): (None, 4, 4),
    }
    _commit(settings, settings.scorer_group, {0: 7, 1: 4})
    _commit(settings, settings.trainer_group, {0: 5})
    assert lags() == {
        ("scorer", 0): (7, 7, 0),
        ("scorer", 1): (4, 4, 0),
        ("trainer", 0): (5, 7, 2),
        ("trainer", 1): (None, 4, 4),
    }
    _commit(settings, settings.trainer_group, {0: 7, 1: 4})
    assert {key: lag for key, (_, _, lag) in lags().items()} == dict.fromkeys(lags(), 0)
