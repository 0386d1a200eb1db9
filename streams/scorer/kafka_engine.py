"""The ``kafka`` scorer engine: a confluent-kafka consumer group around the scorer runtime.

The same :class:`~streams.scorer.runtime.ScorerRuntime` as the Faust engine scores every
batch, on an asyncio loop in the main thread that also serves the same REST API (the
views of :mod:`streams.scorer.web` on the same aiohttp application, tokens included),
the snapshot poll and the pub/sub hint. Only the transport differs:

- a consumer thread takes up to ``STREAMREC_BATCH_SIZE`` page views (waiting at most
  ``STREAMREC_BATCH_WAIT_S``) and hands them to the loop, where the runtime scores them,
  sends the outputs and writes the histories back; it then takes the next batch while
  the broker acknowledges the last one (up to ``STREAMREC_BATCHES_IN_FLIGHT`` batches await
  their acknowledgement; the runtime lets a batch read histories only after the batch before
  it wrote its own, and sends its outputs after that batch's);
- a batch's offsets are stored only once the broker acknowledged every recommendation
  and dead letter of it *and of every batch before it* (a refused send is retried by the
  runtime, never skipped); stored offsets are committed every
  :data:`COMMIT_INTERVAL_S`, before partitions are given up in a rebalance, and on a
  clean stop. So an offset is never committed before its outputs are acknowledged:
  at-least-once, as with Faust;
- a rebalance (whose callbacks run inside ``consume``) first waits for the batches in
  flight, stores their offsets and commits: the partitions' next owner re-scores none
  of them;
- a consumer that receives nothing for ``STREAMREC_STALL_TIMEOUT_S`` while the partitions
  it holds have records past its position is stalled (:mod:`streams.io.stall_watch`): the
  thread logs one error, delivers and commits what it has, closes the consumer and
  subscribes a new one with twice the fetch wait; the group gives it back its partitions at
  the committed offsets (at-least-once, as after any rebalance). ``/readyz`` shows it;
- SIGTERM/SIGINT: the batches in hand get up to :data:`STOP_GRACE_S` to be delivered,
  then the offsets are committed, the consumer leaves the group and the process exits 0;
  a batch still undelivered by then exits 75 without committing (it is scored again).

Faust's per-event stream machinery is what bounds the Faust engine (docs/benchmarks.md,
Benchmarks); this loop does per batch what Faust does per event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.io.stall_watch import (
    WATERMARK_TIMEOUT_S,
    Partition,
    StallWatch,
    next_fetch_wait,
    records_past,
)
from streams.scorer.kafka_delivery import Delivery
from streams.scorer.runtime import EX_TEMPFAIL, ScorerRuntime
from streams.settings import Settings

log = logging.getLogger(__name__)

#: How long a stop waits for the batch in hand (as the Faust engine's ``deliver``).
STOP_GRACE_S = 8.0
#: Stored offsets are committed at most this often (a fifth of Faust's commit interval:
#: fewer duplicates after a crash, at most 5 commit requests a second).
COMMIT_INTERVAL_S = 0.2
#: How long leaving the group may take after the last commit.
CLOSE_TIMEOUT_S = 10.0


class PageViewMessage(NamedTuple):
    """One consumed record, as :class:`~streams.io.dlq.InputMessage` reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None


class ConsumeLoop:
    """The consumer thread: consume a batch, have it delivered, store, commit."""

    def __init__(
        self,
        settings: Settings,
        runtime: ScorerRuntime,
        delivery: Delivery,
        loop: asyncio.AbstractEventLoop,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self.settings = settings
        self._new_consumer = consumer_factory
        self.runtime = runtime
        self.delivery = delivery
        self.loop = loop
        self._assigned: set[tuple[str, int]] = set()
        self._stopping = threading.Event()
        #: Set once no batch is in hand after a stop request (it was delivered).
        self.drained = threading.Event()
        #: Set when the thread has ended: committed and left the group, or failed.
        self.finished = threading.Event()
        self.failure: BaseException | None = None
        self._uncommitted = False
        self._last_commit = time.monotonic()
        self._last_error: tuple[int, float] = (0, 0.0)
        #: Batches handed to the loop, oldest first, with the future of their delivery.
        self._in_flight: deque[tuple[list[PageViewMessage], concurrent.futures.Future[Any]]] = (
            deque()
        )
        self.fetch_wait_ms = settings.fetch_wait_ms
        self.watch = StallWatch("scorer", settings.stall_timeout_s)
        #: Consumers replaced after a stall since start.
        self.replacements = 0
        self._thread = threading.Thread(target=self._run, name="consume", daemon=True)

    # -- what the rest of the process asks ---------------------------------------------
    def assigned(self) -> int:
        """Partitions of the page-views topic this scorer consumes now."""
        return len(self._assigned)

    def health(self) -> dict[str, Any]:
        """The consumer's stall state and fetch wait (``/readyz``, ``/metrics``)."""
        return {
            **self.watch.as_dict(),
            "fetch_wait_ms": self.fetch_wait_ms,
            "replacements": self.replacements,
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._run_consumer():
                # Stalled: the next consumer waits longer for each fetch.
                self.fetch_wait_ms = next_fetch_wait(self.fetch_wait_ms)
                self.replacements += 1
                self.watch.restarted()
                log.warning(
                    "consumer_replaced reader=scorer fetch_wait_ms=%d replacements=%d",
                    self.fetch_wait_ms,
                    self.replacements,
                )
        except BaseException as exc:  # ends the process: nothing undelivered is committed
            self.failure = exc
            log.exception("consume_loop_failed")
        finally:
            self.finished.set()
            self.loop.call_soon_threadsafe(lambda: None)  # wake the loop

    def _run_consumer(self) -> bool:
        """One consumer's life: subscribe, consume until stopped (True) or stalled
        (False); deliver, store and commit what it read; leave the group."""
        consumer = self._new_consumer(
            self.settings.consumer_config(
                self.settings.scorer_group,
                **{"enable.auto.offset.store": False, "fetch.wait.max.ms": self.fetch_wait_ms},
            )
        )
        try:
            consumer.subscribe(
                [self.settings.topic_page_views],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            stopped = self._consume(consumer)
            self._settle(consumer, keep=0)
            if stopped:
                self.drained.set()
            self._commit(consumer, asynchronous=False)
        finally:
            consumer.close()  # leaves the group (the revoke callback commits again)
        return stopped

    def _lag(self, consumer: Consumer) -> dict[Partition, int]:
        """Records past this consumer's position on each partition it holds."""
        held = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
        if not held:
            return {}
        positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(held)}
        unknown = [tp for tp in held if positions[(tp.topic, tp.partition)] < 0]
        if unknown:  # nothing consumed there yet: it starts at the committed offset
            for tp in consumer.committed(unknown, timeout=WATERMARK_TIMEOUT_S):
                positions[(tp.topic, tp.partition)] = tp.offset
        return {
            (tp.topic, tp.partition): records_past(
                consumer, tp.topic, tp.partition, positions[(tp.topic, tp.partition)]
            )
            for tp in held
        }

    def _consume(self, consumer: Consumer) -> bool:
        """Consume until stopped (True) or stalled (False)."""
        s = self.settings
        rt = self.runtime
        watch = self.watch
        send, send_many = self.delivery.send, self.delivery.send_many
        while not self._stopping.is_set():
            records = consumer.consume(s.batch_size, s.batch_wait_s)
            watch.received(len(records))
            stalled = (
                not records
                and watch.due()
                and watch.check(lambda: self._lag(consumer), fetch_wait_ms=self.fetch_wait_ms)
            )
            if stalled:
                return False
            batch: list[PageViewMessage] = []
            for m in records:
                err = m.error()
                if err is not None:
                    self._consume_error(err)
                    continue
                # A record without an error has its topic, partition and offset.
                batch.append(
                    PageViewMessage(
                        m.topic(),  # type: ignore[arg-type]
                        m.partition(),  # type: ignore[arg-type]
                        m.offset(),  # type: ignore[arg-type]
                        m.key(),
                        m.value(),
                        m.headers(),  # type: ignore[arg-type]
                    )
                )
            if batch:
                work = rt.deliver(batch, send, send_many=send_many)
                self._in_flight.append((batch, asyncio.run_coroutine_threadsafe(work, self.loop)))
            self._settle(consumer, keep=s.batches_in_flight - 1)
            if self._uncommitted and time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S:
                self._commit(consumer, asynchronous=True)
        return True

    def _settle(self, consumer: Consumer, keep: int) -> None:
        """Store the offsets of the delivered batches at the head of the line; first wait
        until at most ``keep`` batches are left in flight. A failed delivery raises."""
        line = self._in_flight
        while line and (len(line) > keep or line[0][1].done()):
            batch, delivery = line[0]
            delivery.result()  # waits; raises what ended the delivery
            line.popleft()
            self._store(consumer, batch)

    def _store(self, consumer: Consumer, batch: list[PageViewMessage]) -> None:
        """Mark the delivered batch's offsets for the next commit."""
        ends: dict[tuple[str, int], int] = {}
        for m in batch:
            ends[(m.topic, m.partition)] = m.offset + 1
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        try:
            consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:
            # A partition revoked while its batch was scored (it is re-scored by its
            # new owner): only the others are stored.
            log.info("store_offsets_refused error=%s", exc)
            for tp in offsets:
                if (tp.topic, tp.partition) in self._assigned:
                    with contextlib.suppress(KafkaException):
                        consumer.store_offsets(offsets=[tp])
        self._uncommitted = True

    def _commit(self, consumer: Consumer, asynchronous: bool) -> None:
        self._last_commit = time.monotonic()
        if not self._uncommitted:
            return
        try:
            if asynchronous:
                consumer.commit(asynchronous=True)
            else:
                consumer.commit(asynchronous=False)
            self._uncommitted = False
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError._NO_OFFSET:
                self._uncommitted = False
            else:  # the broker is away: committed at the next chance, replayed if never
                log.warning("commit_failed error=%s", exc)

    def _consume_error(self, err: KafkaError) -> None:
        if err.fatal():
            raise KafkaException(err)
        code, when = self._last_error
        now = time.monotonic()
        if code != err.code() or now - when > 60.0:  # once a minute per kind
            log.warning("consume_error error=%s", err)
            self._last_error = (err.code(), now)

    # -- rebalance callbacks (run inside consume(), between batches) --------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned = {(tp.topic, tp.partition) for tp in partitions}
        log.info("partitions_assigned partitions=%s", sorted(p for _, p in self._assigned))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Deliver and store every batch consumed so far, then commit before the
        # partitions go, so their next owner re-scores nothing.
        self._settle(consumer, keep=0)
        self._uncommitted = True
        self._commit(consumer, asynchronous=False)
        self._assigned -= {(tp.topic, tp.partition) for tp in partitions}
        log.info("partitions_revoked partitions=%s", sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned -= {(tp.topic, tp.partition) for tp in partitions}
        log.warning("partitions_lost partitions=%s", sorted(tp.partition for tp in partitions))


async def _every(interval: float, work: Callable[[], Any]) -> None:
    """``work()`` now and then every ``interval`` seconds; a failure is logged, not raised."""
    while True:
        try:
            await work()
        except Exception:
            log.exception("periodic_task_error")
        await asyncio.sleep(interval)


def web_server(
    settings: Settings,
    runtime: ScorerRuntime,
    assigned: Callable[[], int],
    consumer_health: Callable[[], dict[str, Any]] | None = None,
) -> Any:
    """The scorer's web server (a Faust ``Web``, not started), with every view.

    The Faust app only hosts it: the same aiohttp application, token middleware and
    views as the Faust engine's; no agent, consumer or producer of it ever starts.
    """
    from streams.scorer.app import faust_app
    from streams.scorer.overload import InFlightLimit
    from streams.scorer.web import add_views

    rest_limit = InFlightLimit.from_settings(settings)
    runtime.metrics.watch_rest_limit(rest_limit)
    app = faust_app(settings, rest_limit)
    add_views(app, settings, runtime, assigned=assigned, consumer_health=consumer_health)
    web = app.web
    web.cors  # type: ignore[attr-defined]  # noqa: B018 - CORS routing is set up before the routes, as Faust's on_start does
    web.init_server()
    return web


async def serve(settings: Settings, runtime: ScorerRuntime, on_ready: Callable[[], None]) -> int:
    """Run the scorer until SIGTERM/SIGINT; the exit code."""
    loop = asyncio.get_running_loop()
    delivery = Delivery(settings, loop)
    consume = ConsumeLoop(settings, runtime, delivery, loop)
    web = web_server(settings, runtime, consume.assigned, consume.health)
    await web.start_server()

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.ensure_future(_every(settings.model_poll_interval, runtime.refresh_model)),
        asyncio.ensure_future(runtime.listen_for_snapshots(stop.is_set)),
    ]
    consume.start()
    on_ready()
    while not stop.is_set() and not consume.finished.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
    consume.stop()
    code = await _drain(consume)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    left = await loop.run_in_executor(None, delivery.close, 5.0)
    if left:
        log.warning("outputs_unacknowledged_at_stop count=%d", left)
    await web.stop_server()
    return code


async def _drain(consume: ConsumeLoop) -> int:
    """Wait for the batch in hand, the last commit and the group leave; the exit code."""
    if consume.failure is not None:
        return 1
    deadline = time.monotonic() + STOP_GRACE_S
    while not consume.drained.is_set() and not consume.finished.is_set():
        if time.monotonic() > deadline:
            log.critical(
                "batch_undelivered_at_stop: exiting without committing;"
                " the batch is scored again after restart"
            )
            logging.shutdown()
            os._exit(EX_TEMPFAIL)
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + CLOSE_TIMEOUT_S
    while not consume.finished.is_set():
        if time.monotonic() > deadline:
            log.error("consumer_close_timeout: offsets may not be committed; they are replayed")
            return EX_TEMPFAIL
        await asyncio.sleep(0.05)
    return 1 if consume.failure is not None else 0


def run(settings: Settings, runtime: ScorerRuntime, on_ready: Callable[[], None]) -> int:
    """Run the kafka engine on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on non-Linux
        return asyncio.run(serve(settings, runtime, on_ready))
    return int(uvloop.run(serve(settings, runtime, on_ready)))
