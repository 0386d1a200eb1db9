"""Following the recommendations topic: every partition assigned, decoded records out.

No consumer group joins and nothing is committed: partitions are assigned by hand
(:class:`~streams.io.event_source.KafkaEventSource`, which also replaces a stalled
consumer and picks up partitions added later), so the first record arrives as soon as
one fetch answers, instead of after a group join (half the session timeout on the
embedded broker: 23 s with librdkafka's default 45 s).

"From now" starts every partition at the high watermark the broker reports when the
reader starts. The embedded broker reports the base offset of the last batch + 1, so
the rest of that batch (records written before the start) would come first: until a
partition yields a record stamped (``produced_at``) at or after the start, its records
stamped before the start are skipped. On Apache Kafka the watermark is exact and the
rule only drops records that were in flight when the reader started.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.errors import SerializationError, ServiceError
from streams.io.codec import AvroCodec, recommendation_codec
from streams.io.event_source import KafkaEventSource
from streams.records import Offsets
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class TailCounts:
    """What a reader has seen: records read, passed on, skipped as written before the
    start, and skipped as undecodable."""

    read: int = 0
    matched: int = 0
    before_start: int = 0
    undecodable: int = 0


@dataclass
class RecommendationTail:
    """Decoded recommendations of ``topic``, from its beginning or from now.

    Parameters
    ----------
    settings
        Connection settings (bootstrap servers, fetch wait, schema registry).
    topic
        The recommendations topic.
    from_beginning
        Read every record the topic holds; else only those written after :meth:`start`.
    user
        Only this user's records (compared with the record key, before decoding).
    on_bad
        Called with a message for each record that does not decode (it is skipped).
    """

    settings: Settings
    topic: str
    from_beginning: bool = False
    user: str | None = None
    on_bad: Callable[[str], None] = log.warning
    counts: TailCounts = field(default_factory=TailCounts)
    started_ms: int = 0
    partitions: list[int] = field(default_factory=list)
    _source: KafkaEventSource | None = None
    _codec: AvroCodec | None = None
    _key: bytes | None = None
    _filtering: set[int] = field(default_factory=set)

    def start(self) -> None:
        """Assign every partition; records written after this returns are read."""
        self._codec = recommendation_codec(self.settings)
        self._key = None if self.user is None else self.user.encode()
        self.started_ms = int(time.time() * 1000)
        # A group id the client wants; with assign() nothing joins it or commits to it.
        group = f"streamrec-tail-{uuid.uuid4().hex[:12]}"
        self._source = KafkaEventSource(self.settings, [self.topic], group_id=group, reader="tail")
        self.partitions = self._source.partitions()[self.topic]
        offsets: Offsets = {}
        if not self.from_beginning:
            offsets = {self.topic: self._ends(group)}
            self._filtering = set(self.partitions)
        self._source.assign(offsets)

    def _ends(self, group: str) -> dict[int, int]:
        consumer = Consumer(self.settings.consumer_config(group))
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10.0)[1]
                for p in self.partitions
            }
        except KafkaException as exc:
            raise ServiceError(f"cannot read the end of topic {self.topic}: {exc}") from exc
        finally:
            consumer.close()

    def poll(self, timeout: float, max_records: int = 500) -> list[dict[str, Any]]:
        """The decoded records of one poll (at most ``timeout`` seconds), in log order
        per partition."""
        assert self._source is not None and self._codec is not None, "start() first"
        out: list[dict[str, Any]] = []
        counts = self.counts
        for rec in self._source.poll(max_records, timeout):
            counts.read += 1
            if self._key is not None and rec.key != self._key:
                continue
            try:
                value = self._codec.decode(rec.value)
            except SerializationError as exc:
                counts.undecodable += 1
                self.on_bad(f"skipped {rec.topic}/{rec.partition}@{rec.offset}: {exc}")
                continue
            if rec.partition in self._filtering:
                if value["produced_at"] < self.started_ms:
                    counts.before_start += 1
                    continue
                self._filtering.discard(rec.partition)
            counts.matched += 1
            out.append(value)
        return out

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
