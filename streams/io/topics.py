"""Create the topics streamrec uses, explicitly and with the configured partition count.

Auto-created topics get the broker's default partition count, which makes Faust refuse
to start (PartitionsMismatch); so every entry point calls :func:`ensure_topics` first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.errors import ServiceError
from streams.settings import Settings

log = logging.getLogger(__name__)


def pipeline_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_page_views,
        settings.topic_recommendations,
        settings.topic_dlq,
        settings.topic_pages,
    ]


def topic_config(settings: Settings, topic: str) -> dict[str, str]:
    """Broker configuration of a topic streamrec creates.

    The catalog is a table, not a log: compaction keeps the latest record per page_id,
    so a scorer reading it from the start reads each page once, however often it changed.
    """
    if topic == settings.topic_pages:
        return {"cleanup.policy": "compact"}
    return {}


def ensure_topics(
    settings: Settings,
    topics: Iterable[str] | None = None,
    partitions: int | None = None,
    timeout: float = 30.0,
) -> dict[str, int]:
    """Create missing topics; return ``{topic: partition count}`` for all of them."""
    names = list(topics) if topics is not None else pipeline_topics(settings)
    wanted = partitions or settings.partitions
    admin = AdminClient(settings.kafka_common())
    deadline = time.monotonic() + timeout
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise ServiceError(f"Kafka at {settings.bootstrap_servers} unreachable: {exc}") from exc
    missing = [t for t in names if t not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(t, wanted, settings.replication_factor, config=topic_config(settings, t))
                for t in missing
            ],
            operation_timeout=timeout,
        )
        for topic, future in futures.items():
            try:
                future.result()
                log.info("created topic=%s partitions=%d", topic, wanted)
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise ServiceError(f"could not create topic {topic}: {exc}") from exc
    counts: dict[str, int] = {}
    while True:
        metadata = admin.list_topics(timeout=max(1.0, deadline - time.monotonic())).topics
        counts = {t: len(metadata[t].partitions) for t in names if t in metadata}
        if len(counts) == len(names) and all(counts.values()):
            return counts
        if time.monotonic() > deadline:
            missing_now = sorted(set(names) - set(counts))
            raise ServiceError(f"topics not visible after {timeout:.0f} s: {missing_now}")
        time.sleep(0.2)
