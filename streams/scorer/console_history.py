"""The recent past of what the console charts, kept by the scorer itself.

Every :data:`INTERVAL_S` seconds the scorer takes a :class:`Sample` of figures it already
holds (its counters, the served version and rolling served quality, the snapshot's age)
and of the consumer lag totals (through the console's :class:`~streams.io.consumer_lag.
LagMonitor`, which reads at most every 2 s and shares that read with ``/console/state``
and ``/metrics``). :class:`History` keeps the last :data:`CAPACITY` of them (one hour) in
a fixed-length ring, so memory stays bounded (a few hundred bytes per sample) however long
the scorer runs; a restart starts it empty. ``/console/state`` returns them
(``history``), so a page opened now draws the last hour at once.

Sampling runs on the web server's event loop (:func:`sample_in_background`: started and
stopped with the aiohttp application), so both engines, which host the same views, take
samples whether or not a console is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from streams.io.consumer_lag import LagReport

log = logging.getLogger(__name__)

#: Seconds between samples.
INTERVAL_S = 5.0
#: How far back the history reaches.
RETENTION_S = 3600.0
#: Samples kept: one hour at :data:`INTERVAL_S`.
CAPACITY = int(RETENTION_S / INTERVAL_S)


@dataclass(frozen=True, slots=True)
class Sample:
    """The figures the console charts, at ``t`` (seconds since the epoch)."""

    t: float
    #: Counters since the scorer started (the page turns them into rates).
    events_in: int
    events_out: int
    dead_letters: Mapping[str, int]
    #: The served version (0: none yet) and its rolling served quality.
    version: int
    judged: int
    hit: float | None
    mrr: float | None
    #: Age of the served snapshot in seconds (None: no snapshot).
    age_s: float | None
    #: Consumer lag summed over partitions, per role (None: no fresh read).
    lag: Mapping[str, int] | None

    def as_dict(self, k: int) -> dict[str, Any]:
        """The JSON form (``hit@k``/``mrr@k`` named as in ``served``)."""
        return {
            "t": self.t,
            "events_in": self.events_in,
            "events_out": self.events_out,
            "dead_letters": dict(self.dead_letters),
            "version": self.version,
            "judged": self.judged,
            f"hit@{k}": self.hit,
            f"mrr@{k}": self.mrr,
            "age_s": self.age_s,
            "lag": None if self.lag is None else dict(self.lag),
        }


def sample_of(
    t: float,
    counters: Mapping[str, Any],
    served: Mapping[str, Any],
    k: int,
    lag: LagReport | None,
) -> Sample:
    """A sample from the ``counters`` and ``served`` parts of ``/console/state`` and a lag
    read; lag older than two intervals (or failed) counts as none.

    >>> s = sample_of(10.0, {"events_in": 5, "events_out": 4, "dead_letters": {"x": 1}},
    ...               {"version": 2, "judged": 3, "hit@10": 0.5, "mrr@10": 0.25,
    ...                "age_s": 7.0}, 10, LagReport(9.0, ()))
    >>> (s.events_in, s.version, s.hit, s.lag)
    (5, 2, 0.5, {})
    >>> sample_of(10.0, {"events_in": 0, "events_out": 0, "dead_letters": {}},
    ...           {"version": 0, "judged": 0}, 10, LagReport(9.0, (), "down")).lag is None
    True
    """
    fresh = (
        lag is not None
        and lag.error is None
        and lag.measured_at is not None
        and t - lag.measured_at <= 2 * INTERVAL_S
    )
    return Sample(
        t=t,
        events_in=int(counters["events_in"]),
        events_out=int(counters["events_out"]),
        dead_letters=dict(counters["dead_letters"]),
        version=int(served["version"]),
        judged=int(served["judged"]),
        hit=served.get(f"hit@{k}"),
        mrr=served.get(f"mrr@{k}"),
        age_s=served.get("age_s"),
        lag=lag.totals() if fresh and lag is not None else None,
    )


class History:
    """The last ``capacity`` samples, oldest first (a ring: the oldest goes first)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._samples: deque[Sample] = deque(maxlen=capacity)

    @property
    def capacity(self) -> int:
        return self._samples.maxlen or 0

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, sample: Sample) -> None:
        """Keep ``sample`` (dropping the oldest when full)."""
        self._samples.append(sample)

    def since(self, after: float | None = None) -> list[Sample]:
        """The samples taken after ``after`` (all of them for None), oldest first."""
        if after is None:
            return list(self._samples)
        return [s for s in self._samples if s.t > after]


async def keep_sampling(
    history: History, take: Callable[[], Awaitable[Sample]], interval_s: float = INTERVAL_S
) -> None:
    """Add ``await take()`` to ``history`` now and every ``interval_s`` seconds; a failed
    sample is logged and skipped. Runs until cancelled."""
    while True:
        started = time.monotonic()
        try:
            history.add(await take())
        except Exception:  # a chart point is never worth stopping the sampling
            log.exception("console_sample_failed")
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))


def sample_in_background(
    web_app: web.Application,
    history: History,
    take: Callable[[], Awaitable[Sample]],
    interval_s: float = INTERVAL_S,
) -> None:
    """Run :func:`keep_sampling` while ``web_app`` runs (from its startup to its cleanup)."""
    tasks: list[asyncio.Task[None]] = []

    async def start(_: web.Application) -> None:
        tasks.append(asyncio.create_task(keep_sampling(history, take, interval_s)))

    async def stop(_: web.Application) -> None:  # may run twice: Faust cleans up twice
        while tasks:
            task = tasks.pop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    web_app.on_startup.append(start)
    web_app.on_cleanup.append(stop)
