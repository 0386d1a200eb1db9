"""Sending a scorer's outputs with confluent-kafka, acknowledged on an asyncio loop.

:class:`Delivery` gives :class:`~streams.scorer.runtime.ScorerRuntime` the ``send`` and
``send_many`` it wants: each call queues its records on one idempotent ``acks=all``
producer and returns a future that the loop resolves once the broker acknowledged every
one of them, or fails with the first delivery error (the runtime then re-sends the
batch). Delivery reports are served by one thread of this class, so the loop never
blocks on the broker.

A fatal producer error (e.g. a broker that forgot the idempotent producer's id after a
restart) makes every later send fail; the next send then starts a new producer, so a
scorer recovers from it instead of retrying a dead one forever.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from streams.settings import Settings

log = logging.getLogger(__name__)

#: A linger of 2 ms batches a scored batch's records without delaying a lone one (the
#: Faust engine's ``producer_linger`` is the same).
LINGER_MS = 2


class DeliveryFailed(Exception):
    """The broker did not acknowledge a record (the runtime retries the batch)."""


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(DeliveryFailed(error.str()))


class Delivery:
    """One producer, its delivery-report thread, and futures on ``loop``."""

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self._fatal: KafkaError | None = None
        self._producer = self._new_producer()
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name="delivery", daemon=True)
        self._poller.start()

    def _new_producer(self) -> Producer:
        self._fatal = None
        config = self.settings.producer_config(**{"linger.ms": LINGER_MS})
        config["error_cb"] = self._error
        return Producer(config)

    def _error(self, err: KafkaError) -> None:
        if err.fatal():
            if self._fatal is None:
                log.error("producer_fatal_error error=%s: the next send starts a new producer", err)
            self._fatal = err
        else:
            log.debug("producer_error error=%s", err)

    def _serve_reports(self) -> None:
        while not self._closing.is_set():
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:  # poll raises a fatal error as well as reporting it
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.fatal():
                    self._error(err)
                else:
                    log.warning("delivery_report_error error=%s", exc)
            except Exception:  # a report callback must never end the thread
                log.exception("delivery_report_error")

    def _ready_producer(self) -> Producer:
        if self._fatal is not None:
            old, self._producer = self._producer, self._new_producer()
            # Whatever the failed producer holds is reported failed (and sent again).
            try:
                old.purge()
                old.poll(0)
            except (KafkaException, RuntimeError):
                pass
        return self._producer

    async def _produce(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None]],
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.loop.create_future()
        if not records:
            future.set_result(None)
            return future
        # Reports arrive on the report thread only (this loop never polls), one at a
        # time: a plain counter is safe.
        left = [len(records)]
        first_error: list[KafkaError | None] = [None]
        loop = self.loop

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None and first_error[0] is None:
                first_error[0] = err
            left[0] -= 1
            if left[0] == 0:
                loop.call_soon_threadsafe(_settle, future, first_error[0])

        producer = self._ready_producer()
        produce = producer.produce
        for key, value in records:
            while True:
                try:
                    if headers is None:
                        produce(topic, value, key, on_delivery=delivered)
                    else:
                        produce(
                            topic,
                            value,
                            key,
                            on_delivery=delivered,
                            headers=headers,  # type: ignore[arg-type]  # list is invariant
                        )
                    break
                except BufferError:  # the local queue is full: the report thread drains it
                    await asyncio.sleep(0.05)
                except KafkaException as exc:
                    # Fatal (the producer is dead) or refused outright: fail this send;
                    # the reports of what was queued still arrive, and are ignored.
                    err = exc.args[0] if exc.args else None
                    if isinstance(err, KafkaError) and err.fatal():
                        self._error(err)
                    if not future.done():
                        future.set_exception(DeliveryFailed(str(exc)))
                    return future
        return future

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> asyncio.Future[None]:
        """Queue one record (a dead letter); the future resolves when it is acked."""
        return await self._produce(topic, [(key, value)], headers)

    async def send_many(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
    ) -> asyncio.Future[None]:
        """Queue ``records`` (partitioned by key, as ``send``); one future for all."""
        return await self._produce(topic, records)

    def close(self, timeout: float = 10.0) -> int:
        """Wait up to ``timeout`` for outstanding reports, then stop; what is left."""
        self._closing.set()  # flush serves the reports from here on, in this thread alone
        self._poller.join(1.0)
        return int(self._producer.flush(timeout))
