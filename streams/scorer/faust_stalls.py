"""The Faust engine's stall watch: the kafka engine's rule, with the remedy Faust allows.

A Faust worker owns its aiokafka consumer, so the scorer cannot swap it for a new one as
the kafka engine does (:mod:`streams.scorer.kafka_engine`). It needs no new consumer: the
remedy of a stall (:mod:`streams.io.stall_watch`) is a longer fetch wait, and aiokafka's
fetcher reads its wait at every fetch request, so the running consumer gets it: same
positions, same group membership, nothing re-scored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from streams.io.stall_watch import Partition, StallWatch, next_fetch_wait
from streams.settings import Settings

log = logging.getLogger(__name__)


class FaustStallWatch:
    """Watches the page-view consumer of a Faust app (call :meth:`received` per batch and
    :meth:`check` from a timer)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.topic = settings.topic_page_views
        self.watch = StallWatch("scorer", settings.stall_timeout_s)
        self.fetch_wait_ms = settings.fetch_wait_ms

    def received(self, count: int) -> None:
        self.watch.received(count)

    def health(self) -> dict[str, Any]:
        """As :meth:`~streams.scorer.kafka_engine.ConsumeLoop.health` (``/readyz``)."""
        return {**self.watch.as_dict(), "fetch_wait_ms": self.fetch_wait_ms, "replacements": 0}

    async def check(self) -> bool:
        """When nothing arrived for the timeout: stalled? Then raise the fetch wait."""
        if not self.watch.due():
            return False
        lag: Mapping[Partition, int] = {}
        error: BaseException | None = None
        try:
            lag = await self._lag()
        except Exception as exc:  # the broker is away: not a stall (StallWatch.check)
            error = exc

        def read() -> Mapping[Partition, int]:
            if error is not None:
                raise error
            return lag

        if not self.watch.check(read, fetch_wait_ms=self.fetch_wait_ms):
            return False
        self._raise_fetch_wait()
        return True

    async def _lag(self) -> dict[Partition, int]:
        consumer = self.app.consumer
        held = [tp for tp in consumer.assignment() if tp.topic == self.topic]
        if not held:
            return {}
        ends = await consumer.highwaters(*held)
        out = {}
        for tp in held:
            position = await consumer.position(tp)
            if position is not None and ends.get(tp) is not None:
                out[(tp.topic, tp.partition)] = max(0, ends[tp] - position)
        return out

    def _raise_fetch_wait(self) -> None:
        self.fetch_wait_ms = next_fetch_wait(self.fetch_wait_ms)
        fetcher = getattr(getattr(self.app.consumer._thread, "_consumer", None), "_fetcher", None)
        if fetcher is None:  # not started: the next consumer gets it
            from streams.scorer.app import tune_fetch_wait

            tune_fetch_wait(self.fetch_wait_ms)
        else:
            fetcher._fetch_max_wait_ms = self.fetch_wait_ms
        self.watch.restarted()
        log.warning("consumer_fetch_wait_raised reader=scorer fetch_wait_ms=%d", self.fetch_wait_ms)
