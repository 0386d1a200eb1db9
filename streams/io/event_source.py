"""confluent-kafka as the trainer's :class:`~streams.trainer.loop.EventSource`.

Partitions are assigned by hand, not by a group rebalance: the snapshot, not the group,
says where to start, and a trainer needs every partition anyway (a rebalance would only
cost half a session timeout at start). ``group.id`` is still the trainer group, so the
commits made after each snapshot show the trainer's lag in ordinary Kafka tooling.
Partitions added to the topic later are picked up from their beginning.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streams.errors import ServiceError
from streams.io.consumer_errors import is_record
from streams.records import LogRecord
from streams.settings import Settings
from streams.trainer.loop import Offsets

log = logging.getLogger(__name__)


class KafkaEventSource:
    """Read whole topics with a manually assigned confluent-kafka consumer.

    Parameters
    ----------
    settings
        Connection settings; the consumer config comes from ``settings.consumer_config``.
    topics
        Topics to read (default: the page-view topic).
    group_id
        Consumer group for commits (default: ``settings.trainer_group``).
    metadata_refresh_s
        How often to look for new partitions.
    """

    def __init__(
        self,
        settings: Settings,
        topics: list[str] | None = None,
        group_id: str | None = None,
        metadata_refresh_s: float = 10.0,
    ) -> None:
        self.topics = list(topics or [settings.topic_page_views])
        self.metadata_refresh_s = metadata_refresh_s
        self._consumer = Consumer(settings.consumer_config(group_id or settings.trainer_group))
        self._assigned: dict[str, set[int]] = {}
        self._next_refresh = 0.0
        self._closed = False

    def partitions(self) -> dict[str, list[int]]:
        """Partition ids of each topic, from the broker's metadata."""
        out: dict[str, list[int]] = {}
        for topic in self.topics:
            try:
                meta = self._consumer.list_topics(topic, timeout=10.0).topics.get(topic)
            except KafkaException as exc:
                raise ServiceError(f"cannot read metadata of topic {topic}: {exc}") from exc
            if meta is None or meta.error is not None:
                raise ServiceError(f"topic {topic} is not available: {meta and meta.error}")
            out[topic] = sorted(meta.partitions)
        return out

    def assign(self, offsets: Offsets) -> None:
        """Assign every partition: at ``offsets`` (next offset) if known, else the start."""
        wanted = {t: set(ps) for t, ps in self.partitions().items()}
        for topic, parts in offsets.items():
            if topic in wanted:  # a partition the snapshot saw is kept even if metadata lags
                wanted[topic] |= set(parts)
        tps = [
            TopicPartition(t, p, offsets.get(t, {}).get(p, OFFSET_BEGINNING))
            for t, ps in sorted(wanted.items())
            for p in sorted(ps)
        ]
        self._consumer.assign(tps)
        self._assigned = wanted
        self._next_refresh = time.monotonic() + self.metadata_refresh_s
        log.info("trainer source assigned partitions=%s", {t: sorted(p) for t, p in wanted.items()})

    def _pick_up_new_partitions(self) -> None:
        self._next_refresh = time.monotonic() + self.metadata_refresh_s
        try:
            current = self.partitions()
        except ServiceError as exc:
            log.warning("partition refresh failed error=%r", str(exc))
            return
        new = [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t, ps in current.items()
            for p in ps
            if p not in self._assigned.get(t, set())
        ]
        if new:
            self._consumer.incremental_assign(new)
            for tp in new:
                self._assigned.setdefault(tp.topic, set()).add(tp.partition)
            log.info("trainer source new partitions=%s", [(tp.topic, tp.partition) for tp in new])

    def poll(self, max_records: int, timeout: float) -> list[LogRecord]:
        if time.monotonic() >= self._next_refresh:
            self._pick_up_new_partitions()
        out: list[LogRecord] = []
        for msg in self._consumer.consume(max_records, timeout):
            if not is_record(msg, "trainer"):
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None and partition is not None and offset is not None
            out.append(LogRecord(topic, partition, offset, msg.value(), key=msg.key()))
        return out

    def end_offsets(self) -> Offsets:
        """The high watermark of every assigned partition (where reading "to the end" stops)."""
        out: Offsets = {}
        for topic, parts in self._assigned.items():
            for partition in parts:
                try:
                    _, high = self._consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=10.0
                    )
                except KafkaException as exc:
                    raise ServiceError(
                        f"cannot read the end of {topic}/{partition}: {exc}"
                    ) from exc
                out.setdefault(topic, {})[partition] = high
        return out

    def commit(self, offsets: Offsets) -> None:
        tps = [TopicPartition(t, p, o) for t, ps in offsets.items() for p, o in ps.items()]
        if not tps:
            return
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            # Commits only feed lag monitoring; the snapshot holds the real position.
            log.warning("offset commit failed error=%s", exc)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()
