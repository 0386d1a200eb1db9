"""Knowing when a consumer is stuck: behind the log, and receiving nothing.

A consumer that receives nothing is normally caught up. It is *stalled* when it receives
nothing for ``timeout_s`` while some partition it reads still holds records past its
position (position < high watermark). Brokers do that: the embedded broker answers every
fetch empty once listing a partition takes longer than the fetch wait (docs/guarantees.md, "The
embedded broker"); on Apache Kafka a lost fetch session or a stuck connection looks the
same from the client. Nothing in librdkafka reports it, so every consumer loop of
streamrec asks a :class:`StallWatch` after each poll.

What a loop does on a stall is its own (see :class:`~streams.io.event_source.
KafkaEventSource` and :mod:`streams.scorer.kafka_engine`): it logs one error, shows it,
and replaces its consumer by a new one at the same positions whose fetch wait is
:func:`next_fetch_wait` of the old one, so a broker that needs longer to answer gets it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: The longest fetch wait a stall raises the wait to (ms).
MAX_FETCH_WAIT_MS = 2000
#: The least fetch wait a replacement consumer gets (ms): the default wait, which serves
#: the embedded broker for hours at the rates in docs/guarantees.md.
MIN_REPLACEMENT_WAIT_MS = 100

Partition = tuple[str, int]
#: Seconds a watermark request of a stall check may take.
WATERMARK_TIMEOUT_S = 5.0


def next_fetch_wait(current_ms: int, ceiling_ms: int = MAX_FETCH_WAIT_MS) -> int:
    """The fetch wait a replacement consumer gets after a stall: twice the old one, at
    least :data:`MIN_REPLACEMENT_WAIT_MS`, at most ``ceiling_ms`` (never below the old one).

    >>> next_fetch_wait(5)
    100
    >>> next_fetch_wait(100)
    200
    >>> next_fetch_wait(1500)
    2000
    >>> next_fetch_wait(5000)
    5000
    """
    doubled = max(2 * current_ms, MIN_REPLACEMENT_WAIT_MS)
    return max(current_ms, min(doubled, ceiling_ms))


def records_behind(
    positions: Mapping[Partition, int], ends: Mapping[Partition, int]
) -> dict[Partition, int]:
    """Records past the position on each partition that has some (``ends``: high
    watermarks; a partition missing from either is not counted).

    >>> records_behind({("t", 0): 5, ("t", 1): 9}, {("t", 0): 8, ("t", 1): 9})
    {('t', 0): 3}
    """
    out = {}
    for tp, position in positions.items():
        end = ends.get(tp)
        if end is not None and end > position:
            out[tp] = end - position
    return out


def records_past(consumer: Any, topic: str, partition: int, position: int | None) -> int:
    """Records the broker holds on ``topic``/``partition`` at or past ``position`` (None:
    from the partition's start); raises KafkaException when the broker does not answer.

    A reader that got nothing for a while is at the end of the log only when this is 0.
    """
    from confluent_kafka import TopicPartition

    low, high = consumer.get_watermark_offsets(
        TopicPartition(topic, partition), timeout=WATERMARK_TIMEOUT_S
    )
    return max(0, high - max(low if position is None else position, low))


def starved_error(reader: str, topic: str, partition: int, remaining: int) -> str:
    """The message of a batch reader that gives up: the broker keeps answering nothing."""
    return (
        f"{reader}: the broker answers no records of {topic}/{partition} though it holds "
        f"{remaining} more, even with a {MAX_FETCH_WAIT_MS} ms fetch wait; nothing was "
        "skipped, the read is incomplete (on the embedded broker: too many small batches in "
        'the partition, docs/guarantees.md, "The embedded broker")'
    )


@dataclass
class StallWatch:
    """Counts the time since a consumer last received a record; when it exceeds
    ``timeout_s``, asks whether the consumer is behind.

    Call :meth:`received` after every poll and :meth:`check` when :meth:`due`; ``check``
    takes a function that reads the partitions' lag (it talks to the broker, so it runs
    at most once per ``timeout_s`` while nothing arrives, never on the hot path).

    Attributes
    ----------
    stalled
        True from a stall's detection until the consumer receives a record again.
    stalls
        Stalls detected since start.
    behind
        Records behind per partition at the last check (empty: caught up or unknown).
    """

    reader: str
    timeout_s: float
    clock: Callable[[], float] = time.monotonic
    stalled: bool = False
    stalls: int = 0
    behind: dict[Partition, int] = field(default_factory=dict)
    last_record_at: float = field(default=0.0)
    _since: float = field(default=0.0)
    _stalled_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self._since = self.last_record_at = self.clock()

    def received(self, count: int) -> None:
        """After a poll that returned ``count`` records."""
        if count:
            now = self.clock()
            self._since = self.last_record_at = now
            if self.stalled:
                self.stalled = False
                self.behind = {}
                log.warning(
                    "consumer_recovered reader=%s stalled_s=%.1f",
                    self.reader,
                    now - self._stalled_at,
                )

    def restarted(self) -> None:
        """The consumer was replaced: give the new one a whole timeout."""
        self._since = self.clock()

    def due(self) -> bool:
        return self.clock() - self._since >= self.timeout_s

    def check(self, lag: Callable[[], Mapping[Partition, int]], **context: Any) -> bool:
        """True when the consumer is stalled: nothing for ``timeout_s`` and behind.

        ``lag`` returns records behind per partition; when it raises (the broker does not
        answer), the broker is away, which its own checks report: not a stall.
        """
        self._since = self.clock()
        try:
            self.behind = {tp: n for tp, n in lag().items() if n > 0}
        except Exception as exc:  # the broker is away: reported elsewhere, retried later
            log.info("stall_check_skipped reader=%s error=%s", self.reader, exc)
            self.behind = {}
            return False
        if not self.behind:
            return False
        self.stalls += 1
        if not self.stalled:
            self._stalled_at = self.clock()
        self.stalled = True
        idle = self.clock() - self.last_record_at
        extra = " ".join(f"{k}={v}" for k, v in context.items())
        log.error(
            "consumer_stalled reader=%s idle_s=%.0f behind=%d partitions=%s %s: the broker "
            "answers no records though the log holds some; replacing the consumer",
            self.reader,
            idle,
            sum(self.behind.values()),
            sorted(f"{t}/{p}" for t, p in self.behind),
            extra,
        )
        return True

    def as_dict(self) -> dict[str, Any]:
        """For /readyz, status lines and the trainer's status record."""
        return {
            "stalled": self.stalled,
            "stalls": self.stalls,
            "behind": sum(self.behind.values()),
            "idle_s": round(self.clock() - self.last_record_at, 1),
        }
