"""Producing to Kafka without losing anything on back-pressure.

A full local queue (``BufferError``) is waited out by serving delivery reports, never
dropped; every message ends either delivered or reported as failed in
:class:`DeliveryReport`. A fatal producer error (the idempotent producer's guarantees
cannot be kept, e.g. the broker forgot its producer id) fails what is queued and makes
further :meth:`ReliableProducer.produce` calls raise :class:`ProducerFailed`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.errors import ProducerFailed
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    """How many messages were delivered, and which failed with what."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        return self.sent - self.delivered - self.failed


class ReliableProducer:
    """A confluent-kafka producer that blocks instead of dropping when its queue is full."""

    def __init__(
        self,
        settings: Settings,
        on_delivery: Callable[[Message], None] | None = None,
        stop: Callable[[], object] | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings
        # Checked while a full queue is waited out, so a stop request is not ignored
        # for as long as the broker is away.
        self._stop = stop
        self.report = DeliveryReport()
        self._on_delivery = on_delivery
        self.fatal_error: KafkaError | None = None
        config = settings.producer_config(**overrides)
        config.setdefault("error_cb", self._error)
        self._producer = Producer(config)

    def _error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal_error = err
            log.error("producer fatal error=%s; queued messages are failed", err)
        else:
            log.debug("producer error=%s", err)

    def _raise_if_fatal(self) -> None:
        if self.fatal_error is not None:
            r = self.report
            raise ProducerFailed(
                f"producer failed fatally ({self.fatal_error.str()}): "
                f"{r.delivered} delivered, {r.failed} failed, "
                f"{r.pending} not confirmed of {r.sent} sent"
            )

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.report.delivered += 1
        else:
            self.report.failed += 1
            name = err.name()
            self.report.errors[name] = self.report.errors.get(name, 0) + 1
            log.warning("delivery failed topic=%s error=%s", msg.topic(), err)
        if self._on_delivery is not None:
            self._on_delivery(msg)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        timestamp_ms: int | None = None,
    ) -> bool:
        """Queue one message; False if ``stop`` was requested while the queue was full."""
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": self._delivered}
        if headers:
            kwargs["headers"] = headers
        if timestamp_ms:
            kwargs["timestamp"] = timestamp_ms
        while True:
            self._raise_if_fatal()
            try:
                self._producer.produce(topic, **kwargs)
                break
            except BufferError:
                # Local queue full: serve delivery reports until there is room.
                if self._stop is not None and self._stop():
                    return False
                self._producer.poll(0.1)
            except KafkaException as exc:
                if exc.args and exc.args[0].fatal():
                    self.fatal_error = self.fatal_error or exc.args[0]
                    continue  # raised as ProducerFailed above
                raise
        self.report.sent += 1
        self._producer.poll(0)
        return True

    def poll(self, timeout: float = 0.0) -> int:
        return int(self._producer.poll(timeout))

    def flush(
        self, timeout: float = 30.0, stop: Callable[[], object] | None = None
    ) -> DeliveryReport:
        """Wait for every outstanding delivery report (up to ``timeout`` seconds).

        ``stop`` is checked at least once a second; when it returns true the wait ends
        early (what is still pending is reported as such).
        """
        deadline = time.monotonic() + timeout
        while self.report.pending > 0 and time.monotonic() < deadline:
            if stop is not None and stop():
                break
            wait = min(1.0, max(0.0, deadline - time.monotonic()))
            try:
                self._producer.flush(wait)
            except (KafkaException, SystemError):
                # After a fatal error confluent-kafka's flush can fail ("returned NULL
                # without setting an exception"); the purged messages' reports still
                # arrive through poll.
                self._producer.poll(min(wait, 0.1))
        return self.report

    def close(self, timeout: float = 30.0) -> DeliveryReport:
        """Flush, then release the client (its connections close with it)."""
        report = self.flush(timeout)
        del self._producer
        return report


def page_view(
    user_id: str,
    page_id: str,
    ts_ms: int,
    session_id: str | None = None,
    event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A PageView record as apps send it."""
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "user_id": user_id,
        "page_id": page_id,
        "ts": int(ts_ms),
        "session_id": session_id,
        "referrer": extra.get("referrer"),
        "context": extra.get("context") or {},
    }
