"""Everything one scorer process holds, apart from the transport that feeds it.

The Faust app (:mod:`streams.scorer.app`) calls :meth:`ScorerRuntime.process` per batch and
:meth:`ScorerRuntime.refresh_model` from a timer and a pub/sub listener; the REST views
read from the same runtime, so REST and stream answers come from one model and one
history store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from online_model.catalog import Rules
from online_model.errors import SnapshotError
from streams.catalog.follower import CatalogFollower, new_catalog
from streams.catalog.rules import NO_RULES
from streams.errors import StoreUnavailable
from streams.experiment.store import ExperimentStore
from streams.io.dlq import DeadLetter, InputMessage
from streams.scorer.core import ScoredBatch, ScoringCore
from streams.scorer.experiment_routing import ExperimentFollower
from streams.scorer.metrics import ScorerMetrics
from streams.scorer.model_holder import ModelHolder
from streams.scorer.threaded_history import ThreadedHistoryStore
from streams.settings import Settings
from streams.state.connection import REDIS_FAILURES
from streams.state.history import AsyncHistoryStore
from streams.state.snapshot_store import SnapshotStore
from streams.wiring import serving, snapshot_store, store_for

#: What a poll of Redis state (an experiment, a model change) rides out and retries.
_STORE_FAILURES: tuple[type[Exception], ...] = (StoreUnavailable, *REDIS_FAILURES)

log = logging.getLogger(__name__)

EX_TEMPFAIL = 75


def _exit_without_commit() -> None:
    logging.shutdown()
    os._exit(EX_TEMPFAIL)


#: send(topic, key, value, headers) -> awaitable that resolves when the broker acknowledged
Send = Callable[
    [str, bytes | None, bytes | None, list[tuple[str, bytes]] | None], Awaitable[Awaitable[Any]]
]
#: send_many(topic, [(key, value), ...]) -> awaitable that resolves when the broker
#: acknowledged them all (keyed like ``send``: per-key order is kept)
SendMany = Callable[[str, Sequence[tuple[bytes | None, bytes | None]]], Awaitable[Awaitable[Any]]]


class ScorerRuntime:
    """Model holder, scoring core, history store, snapshot store and metrics of a scorer."""

    def __init__(
        self,
        settings: Settings,
        store: SnapshotStore | None = None,
        history: AsyncHistoryStore | ThreadedHistoryStore | None = None,
    ) -> None:
        self.settings = settings
        self.holder = ModelHolder()
        self.catalog = new_catalog(settings)
        self.catalog_follower: CatalogFollower | None = None
        self.core = ScoringCore(
            self.holder,
            settings.model_name,
            settings.k,
            settings.history_length,
            settings.max_event_bytes,
            settings.schema_registry_url,
            self.catalog,
            settings.fresh_slots,
        )
        self.store = store if store is not None else snapshot_store(settings)
        #: The namespace whose snapshots are served (another after a promotion).
        self.serving = settings.model_name
        #: What scorers of the model name serve and the store of any namespace (the served
        #: one after a promotion, a challenger's): what the experiment follower and the
        #: operator endpoints use (:mod:`streams.lifecycle.model_actions`).
        lifecycle_client = settings.redis_client(socket_timeout=5.0)  # connects when used
        self.lifecycle = serving(settings, lifecycle_client)
        self.stores = store_for(settings, lifecycle_client)
        self.experiments = ExperimentFollower(
            ExperimentStore(settings.redis_client(), settings.model_name),
            self.stores,
            settings.k,
        )
        self.metrics = ScorerMetrics(self.holder, settings.k, self.experiments)
        self.metrics.watch_serving(settings.model_name, lambda: self.serving)
        #: Users' histories (the kafka engine passes the synchronous store in threads).
        self.history = history or AsyncHistoryStore(
            settings.redis_async_client(socket_timeout=0.5, socket_connect_timeout=0.5),
            settings.model_name,
            settings.history_length,
            settings.history_ttl_s,
        )
        self._refresh_lock = asyncio.Lock()
        #: Held from a batch's history read to its history write: batches in flight at
        #: once (the kafka engine pipelines them) read what the batch before wrote.
        self._history_turn = asyncio.Lock()
        self._refresh_again = False
        self._redis_errors_seen = 0
        self.started_at = time.time()
        #: Set once the first attempt to load the current snapshot has finished (loaded,
        #: none there, or refused): until then the scorer is not ready, since it would
        #: serve the cold-start model while a snapshot may be waiting in Redis.
        self.model_load_attempted = False

    # -- the hot path --------------------------------------------------------------------
    async def process(
        self, messages: Sequence[InputMessage], send: Send, send_many: SendMany | None = None
    ) -> ScoredBatch:
        """Decode, score, send and write back one batch; return when the broker acked.

        ``send_many``, when given, sends the recommendations in one call (the Faust app
        builds per-partition record batches); dead letters always go through ``send``.
        """
        started = time.perf_counter()
        views, dead = self.core.decode(messages)
        routing = self.core.routing
        shadow = routing is not None and routing.shadow
        async with self._history_turn:
            state = await self.history.read((view.user for view in views), shadow)
            batch = self.core.score(views, state)
            topic = self.settings.topic_recommendations
            if send_many is not None:
                acks = (
                    [await send_many(topic, batch.recommendations)] if batch.recommendations else []
                )
            else:
                acks = [await send(topic, key, value, None) for key, value in batch.recommendations]
            acks += [await self._dead_letter(letter, send) for letter in dead]
            await self.history.write(batch.update)
        if acks:
            await asyncio.gather(*acks)
        self._account(batch, dead, started)
        return batch

    async def deliver(
        self,
        messages: Sequence[InputMessage],
        send: Send,
        abandon: Callable[[], None] | None = None,
        grace_s: float = 8.0,
        send_many: SendMany | None = None,
    ) -> ScoredBatch:
        """:meth:`process` until the broker acknowledged the whole batch.

        The transport acknowledges a batch's input offsets once this returns, and Faust
        acknowledges them even when the loop body raises or is cancelled. So a failed send
        is retried with back-off (re-scoring the batch: duplicates are possible, loss is
        not); a stop request lets the batch in flight finish for up to ``grace_s``; and a
        batch that still is not delivered calls ``abandon`` (default: exit the process at
        once), so that none of its offsets is committed and it is scored again.
        """
        work = asyncio.ensure_future(self._deliver_with_retries(messages, send, send_many))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(work), grace_s)
            if not work.done() or work.cancelled() or work.exception() is not None:
                work.cancel()
                log.critical(
                    "batch_undelivered_at_stop events=%d: exiting without committing;"
                    " the batch is scored again after restart",
                    len(messages),
                )
                (abandon or _exit_without_commit)()
            raise

    async def _deliver_with_retries(
        self, messages: Sequence[InputMessage], send: Send, send_many: SendMany | None = None
    ) -> ScoredBatch:
        attempt = 0
        while True:
            try:
                return await self.process(messages, send, send_many)
            except Exception as exc:  # the broker or the producer refused the batch
                attempt += 1
                self.metrics.send_retries.inc()
                delay = min(5.0, 0.1 * 2**attempt)
                log.error(
                    "batch_send_failed attempt=%d events=%d retry_in_s=%.1f error=%r",
                    attempt,
                    len(messages),
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)

    async def _dead_letter(self, letter: DeadLetter, send: Send) -> Awaitable[Any]:
        m = letter.message
        log.warning(
            "dead_letter reason=%s topic=%s partition=%d offset=%d error=%s",
            letter.reason,
            m.topic,
            m.partition,
            m.offset,
            letter.error,
        )
        return await send(self.settings.topic_dlq, m.key, m.value, letter.headers())

    def _account(self, batch: ScoredBatch, dead: list[DeadLetter], started: float) -> None:
        metrics = self.metrics
        metrics.events_scored.inc(len(batch.recommendations))
        for letter in dead:
            metrics.dead_letters.labels(letter.reason).inc()
        new_errors = self.history.errors - self._redis_errors_seen
        if new_errors:
            metrics.redis_errors.inc(new_errors)
            self._redis_errors_seen = self.history.errors
        metrics.add_quality(batch.version, batch.quality)
        if batch.arms is not None:
            self.experiments.count(batch.arms)
        metrics.batch_size.observe(len(batch.recommendations) + len(dead))
        metrics.batch_seconds.observe(time.perf_counter() - started)

    # -- the catalog ---------------------------------------------------------------------
    def follow_catalog(self, load_timeout: float = 30.0) -> bool:
        """Start following the ``pages`` topic; wait until it was read to its end (True)
        or ``load_timeout`` passed (False: serving starts, the catalog catches up)."""
        if self.catalog_follower is None:
            self.catalog_follower = CatalogFollower(self.settings, self.catalog).start()
        loaded = self.catalog_follower.wait_loaded(load_timeout)
        if not loaded:
            log.warning(
                "catalog_not_loaded topic=%s waited_s=%.0f: serving while it catches up",
                self.settings.topic_pages,
                load_timeout,
            )
        return loaded

    # -- hot swap ------------------------------------------------------------------------
    async def refresh_model(self) -> bool:
        """Swap in the store's current snapshot if it changed (between batches).

        A call while a refresh runs is not dropped: the running one looks once more when
        it ends (a snapshot published during a load is served at once, not a poll later).
        """
        if self._refresh_lock.locked():
            self._refresh_again = True
            return False
        async with self._refresh_lock:
            loop = asyncio.get_running_loop()
            swapped = False
            while True:
                self._refresh_again = False
                await loop.run_in_executor(None, self.follow_experiment)
                swapped = await loop.run_in_executor(None, self.load_model) or swapped
                if not self._refresh_again:
                    return swapped

    async def listen_for_snapshots(self, stopping: Callable[[], bool]) -> None:
        """Pub/sub hint: refresh as soon as a snapshot is published, until ``stopping()``
        (the poll timer is the fallback, so a lost message only costs one interval)."""
        client = self.settings.redis_async_client(socket_timeout=None)
        channel = self.store.keys.published_channel
        while not stopping():
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                async for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        await self.refresh_model()
            except asyncio.CancelledError:
                raise
            except REDIS_FAILURES as exc:
                log.debug("snapshot_listener_reconnect error=%r", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def follow_experiment(self) -> None:
        """Follow the experiment record and the served namespace; never raises.

        A promoted challenger is served at once: the champion holder takes the model the
        challenger holder already holds, and follows the challenger's namespace from here.
        """
        try:
            serving, adopted = self.experiments.poll()
            if serving != self.serving:
                store = self.stores(serving)
                if adopted is None:
                    # Not this scorer's challenger: load it before serving it. Versions of
                    # two namespaces are not comparable, so the model held now is dropped.
                    adopted = ModelHolder()
                    adopted.refresh(store)
                self.holder.adopt(adopted)
                self.serving, self.store = serving, store
                self.core.model_name = serving
        except _STORE_FAILURES as exc:
            log.warning("experiment_poll_failed error=%r", exc)
        except Exception:  # following an experiment must never take the scorer down
            log.exception("experiment_poll_error")
        # Set even after a failure: the routing the follower has is still the last known.
        self.core.routing = self.experiments.routing

    def load_model(self) -> bool:
        """One blocking attempt to swap in the current snapshot; never raises.

        Called from a worker thread by :meth:`refresh_model`, and once before the Faust
        worker starts, so that the REST API opens with the stored model.
        """
        try:
            return self.holder.refresh(self.store)
        except _STORE_FAILURES as exc:
            # The store wraps connection errors in StoreUnavailable; raising it out of
            # the Faust timer would crash the whole worker.
            log.warning(
                "model_poll_failed error=%r kept_version=%d", exc, self.holder.current.version
            )
        except SnapshotError as exc:  # a store-level refusal, e.g. a missing body
            log.error("model_poll_refused error=%s", exc)
        except Exception:  # a poll must never take the scorer down; keep the model
            log.exception("model_poll_error kept_version=%d", self.holder.current.version)
        finally:
            self.model_load_attempted = True
        return False

    # -- REST ----------------------------------------------------------------------------
    async def recommend_for(self, user: str, k: int, rules: Rules = NO_RULES) -> dict[str, Any]:
        state = await self.history.read([user])
        history = state.histories.get(user, [])
        served, name, arm = self.holder.current, self.core.model_name, ""
        routing = self.core.routing
        if routing is not None:
            arm = "champion" if routing.shadow else routing.arm(user)
            if arm == "challenger":
                served, name = routing.challenger.current, routing.experiment.challenger
            else:
                name = routing.experiment.champion
        items = self.core.recommend(served, user, history, k, rules=rules)
        return {
            "user_id": user,
            "items": [{"page_id": page, "score": score} for page, score in items],
            "model_name": name,
            "arm": arm,
            "model_version": served.version,
            "history_length": len(history),
            "history_available": not state.degraded,
        }
