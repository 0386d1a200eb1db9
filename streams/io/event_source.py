"""confluent-kafka as the trainer's :class:`~streams.trainer.loop.EventSource`.

Partitions are assigned by hand, not by a group rebalance: the snapshot, not the group,
says where to start, and a trainer needs every partition anyway (a rebalance would only
cost half a session timeout at start). ``group.id`` is still the trainer group, so the
commits made after each snapshot show the trainer's lag in ordinary Kafka tooling.
Partitions added to the topic later are picked up from their beginning.

A source knows its position on every partition (the next offset it hands out), so a
consumer that stalls (behind the log, receiving nothing: :mod:`streams.io.stall_watch`)
is replaced by a new one at exactly those positions: nothing is read twice or skipped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streams.errors import ServiceError
from streams.io.consumer_errors import is_record
from streams.io.stall_watch import Partition, StallWatch, next_fetch_wait, records_past
from streams.records import LogRecord, Offsets
from streams.settings import Settings

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
    reader
        Names the reader in logs (``trainer``, ``catalog``, ...).
    only_partitions
        Read only these partitions of each topic (a trainer shard's); None: every one,
        including partitions added later.
    """

    def __init__(
        self,
        settings: Settings,
        topics: list[str] | None = None,
        group_id: str | None = None,
        metadata_refresh_s: float = 10.0,
        reader: str = "trainer",
        only_partitions: set[int] | None = None,
    ) -> None:
        self.topics = list(topics or [settings.topic_page_views])
        self.metadata_refresh_s = metadata_refresh_s
        self.reader = reader
        self.only_partitions = None if only_partitions is None else set(only_partitions)
        self.fetch_wait_ms = settings.fetch_wait_ms
        self._config = settings.consumer_config(group_id or settings.trainer_group)
        self._consumer = Consumer(self._config)
        self.watch = StallWatch(reader, settings.stall_timeout_s)
        #: Next offset to hand out per partition (absent: from the partition's start).
        self._positions: dict[Partition, int] = {}
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
            out[topic] = sorted(
                p
                for p in meta.partitions
                if self.only_partitions is None or p in self.only_partitions
            )
        return out

    def assign(self, offsets: Offsets) -> None:
        """Assign every partition: at ``offsets`` (next offset) if known, else the start."""
        wanted = {t: set(ps) for t, ps in self.partitions().items()}
        for topic, parts in offsets.items():
            if topic in wanted:  # a partition the snapshot saw is kept even if metadata lags
                wanted[topic] |= {p for p in parts if self._mine(p)}
        self._positions = {
            (t, p): o for t, ps in offsets.items() if t in wanted for p, o in ps.items()
        }
        self._assigned = wanted
        self._consumer.assign(self._start_points())
        self._next_refresh = time.monotonic() + self.metadata_refresh_s
        log.info("trainer source assigned partitions=%s", {t: sorted(p) for t, p in wanted.items()})

    def _mine(self, partition: int) -> bool:
        return self.only_partitions is None or partition in self.only_partitions

    def _start_points(self) -> list[TopicPartition]:
        return [
            TopicPartition(t, p, self._positions.get((t, p), OFFSET_BEGINNING))
            for t, ps in sorted(self._assigned.items())
            for p in sorted(ps)
        ]

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
        positions = self._positions
        for msg in self._consumer.consume(max_records, timeout):
            if not is_record(msg, self.reader):
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None and partition is not None and offset is not None
            out.append(LogRecord(topic, partition, offset, msg.value(), key=msg.key()))
            positions[(topic, partition)] = offset + 1
        self.watch.received(len(out))
        if (
            not out
            and self.watch.due()
            and self.watch.check(self.lag, fetch_wait_ms=self.fetch_wait_ms)
        ):
            self._replace_consumer()
        return out

    def lag(self) -> dict[Partition, int]:
        """Records past this source's position on each assigned partition (asks the
        broker for the watermarks; raises KafkaException when it does not answer)."""
        return {
            (topic, partition): records_past(
                self._consumer, topic, partition, self._positions.get((topic, partition))
            )
            for topic, parts in self._assigned.items()
            for partition in parts
        }

    def _replace_consumer(self) -> None:
        """A new consumer at this source's positions, with a longer fetch wait."""
        self.fetch_wait_ms = next_fetch_wait(self.fetch_wait_ms)
        self._config = {**self._config, "fetch.wait.max.ms": self.fetch_wait_ms}
        old, self._consumer = self._consumer, Consumer(self._config)
        try:
            old.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("stalled consumer close failed reader=%s error=%s", self.reader, exc)
        self._consumer.assign(self._start_points())
        self.watch.restarted()
        log.warning(
            "consumer_replaced reader=%s fetch_wait_ms=%d positions=%s",
            self.reader,
            self.fetch_wait_ms,
            {f"{t}/{p}": o for (t, p), o in sorted(self._positions.items())},
        )

    def health(self) -> dict[str, Any]:
        """The stall watch's state and the fetch wait in use (status, logs)."""
        return {**self.watch.as_dict(), "fetch_wait_ms": self.fetch_wait_ms}

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
