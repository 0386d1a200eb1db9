"""confluent-kafka as replay's :class:`~streams.replay.rebuild.RangeReader`.

Every partition is assigned by hand from its beginning. Starting at
``offsets_for_times(--from)`` would skip the head of the topic on Apache Kafka, but some
brokers (Tansu) answer 0 or worse, and a wrong answer there would silently drop events, so
the reader scans from the start and filters by record timestamp instead: slower on a long
topic, never wrong.

When to stop is likewise decided without trusting watermarks alone (Tansu reports the base
offset of the last batch + 1 as the high watermark): a partition is finished when it returns
a record timestamped at or after ``--to`` + ``lateness`` (it is paused then), or when it
has delivered nothing for ``idle_timeout`` seconds *and* the broker holds nothing past the
reader's position. A partition that is silent while records remain is a stalled fetch
(:mod:`streams.io.stall_watch`), not an end: the reader goes on with a new consumer at
its positions and a longer fetch wait, and fails with a clear error if even the longest
wait gets nothing, rather than replaying part of the range as if it were all.

Producer timestamps are not strictly ordered within a partition: a record of the range
written *after* one stamped past ``--to`` + ``lateness`` is not read. Raise ``lateness``
when producers send late events (the cost is reading that much more of the log).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaException,
    TopicPartition,
)

from streams.errors import ServiceError
from streams.io.consumer_errors import is_record
from streams.io.stall_watch import MAX_FETCH_WAIT_MS, next_fetch_wait, records_past, starved_error
from streams.records import LogRecord
from streams.settings import Settings
from streams.time_range import TimeRange

log = logging.getLogger(__name__)


class KafkaRangeReader:
    """Read the records of one topic whose record timestamp lies in a time range.

    Parameters
    ----------
    settings
        Connection settings.
    topic
        The page-view topic to replay.
    idle_timeout
        Seconds without a record after which a partition counts as read to its end.
    lateness
        Seconds past ``--to`` a record must be stamped before its partition is done.
    on_record
        Called once per record scanned (in range or not), e.g. to move a progress bar.

    Attributes
    ----------
    scanned, no_timestamp
        Records read from the broker, and those without a timestamp (skipped).
    first_ts_ms, last_ts_ms
        Lowest and highest record timestamp scanned (None before any): what the topic
        holds, for telling a user why a range came back empty.
    stopped
        partition -> why reading it ended (``"idle"`` or ``"passed_to"``).
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        idle_timeout: float = 5.0,
        lateness: float = 0.0,
        on_record: Callable[[], None] | None = None,
        max_records: int = 1000,
        poll_timeout: float = 0.25,
    ) -> None:
        if idle_timeout <= 0:
            raise ServiceError(f"idle timeout must be > 0 seconds, got {idle_timeout}")
        self.topic = topic
        self.idle_timeout = idle_timeout
        self.lateness_ms = int(lateness * 1000)
        self.on_record = on_record
        self.max_records = max_records
        self.poll_timeout = poll_timeout
        # A throwaway group: nothing is committed, nothing joins (partitions are assigned).
        self._config = settings.consumer_config(
            f"streamrec-replay-{uuid.uuid4().hex[:12]}",
            **{
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            },
        )
        self._settings = settings
        self._partitions: list[int] | None = None
        self.scanned = 0
        self.no_timestamp = 0
        self.first_ts_ms: int | None = None
        self.last_ts_ms: int | None = None
        self.stopped: dict[int, str] = {}
        #: Consumers replaced because a partition was silent while records remained.
        self.stalls = 0
        self._positions: dict[int, int] = {}

    def partitions(self) -> list[int]:
        if self._partitions is None:
            consumer = Consumer(self._config)
            try:
                meta = consumer.list_topics(self.topic, timeout=10.0).topics.get(self.topic)
            except KafkaException as exc:
                raise ServiceError(
                    f"cannot read metadata of topic {self.topic} at "
                    f"{self._settings.bootstrap_servers}: {exc}"
                ) from exc
            finally:
                consumer.close()
            if meta is None or meta.error is not None or not meta.partitions:
                raise ServiceError(
                    f"topic {self.topic} is not available: "
                    f"{(meta and meta.error) or 'no partitions'}"
                )
            self._partitions = sorted(meta.partitions)
        return list(self._partitions)

    def read(self, time_range: TimeRange) -> Iterator[LogRecord]:
        parts = self.partitions()
        self._consumer = consumer = Consumer(self._config)
        try:
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
            log.info(
                "replay reading topic=%s partitions=%s range=%s idle_timeout_s=%s",
                self.topic,
                parts,
                time_range.to_dict(),
                self.idle_timeout,
            )
            yield from self._scan(parts, time_range)
        finally:
            self._consumer.close()
        log.info(
            "replay read topic=%s scanned=%d no_timestamp=%d stopped=%s",
            self.topic,
            self.scanned,
            self.no_timestamp,
            self.stopped,
        )

    def _scan(self, parts: list[int], time_range: TimeRange) -> Iterator[LogRecord]:
        last_seen: dict[int, float] | None = None  # idle clocks start after the first fetch
        positions = self._positions
        while len(self.stopped) < len(parts):
            consumer = self._consumer
            messages = consumer.consume(self.max_records, self.poll_timeout)
            now = time.monotonic()
            if last_seen is None:
                last_seen = dict.fromkeys(parts, now)
            for msg in messages:
                if not is_record(msg, "replay"):
                    continue
                partition, offset = msg.partition(), msg.offset()
                assert partition is not None and offset is not None
                if partition in self.stopped:
                    continue  # prefetched before the pause
                last_seen[partition] = now
                positions[partition] = offset + 1
                self.scanned += 1
                if self.on_record is not None:
                    self.on_record()
                ts_type, ts = msg.timestamp()
                if ts_type == TIMESTAMP_NOT_AVAILABLE:
                    self.no_timestamp += 1
                    continue
                if self.first_ts_ms is None or ts < self.first_ts_ms:
                    self.first_ts_ms = ts
                if self.last_ts_ms is None or ts > self.last_ts_ms:
                    self.last_ts_ms = ts
                if time_range.passed(ts, self.lateness_ms):
                    self.stopped[partition] = "passed_to"
                    consumer.pause([TopicPartition(self.topic, partition)])
                    continue
                if ts in time_range:
                    yield LogRecord(self.topic, partition, offset, msg.value(), timestamp_ms=ts)
            for p in parts:
                if p not in self.stopped and now - last_seen[p] >= self.idle_timeout:
                    if self._stalled(p, parts):
                        last_seen = dict.fromkeys(parts, time.monotonic())
                        break
                    self.stopped[p] = "idle"

    def _stalled(self, partition: int, parts: list[int]) -> bool:
        """True when ``partition`` is silent while the broker holds records past the
        reader's position: the consumer was replaced by one with a longer fetch wait."""
        try:
            remaining = records_past(
                self._consumer, self.topic, partition, self._positions.get(partition)
            )
        except KafkaException as exc:
            raise ServiceError(f"cannot read the end of {self.topic}/{partition}: {exc}") from exc
        if not remaining:
            return False
        wait = self._config["fetch.wait.max.ms"]
        if wait >= MAX_FETCH_WAIT_MS:
            raise ServiceError(starved_error("replay", self.topic, partition, remaining))
        self.stalls += 1
        self._config = {**self._config, "fetch.wait.max.ms": next_fetch_wait(wait)}
        log.error(
            "consumer_stalled reader=replay topic=%s partition=%d remaining=%d fetch_wait_ms=%d:"
            " the broker answers no records though the log holds some; replacing the consumer",
            self.topic,
            partition,
            remaining,
            wait,
        )
        self._consumer.close()
        self._consumer = Consumer(self._config)
        self._consumer.assign(
            [
                TopicPartition(self.topic, p, self._positions.get(p, OFFSET_BEGINNING))
                for p in parts
                if p not in self.stopped
            ]
        )
        return True
