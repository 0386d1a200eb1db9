"""The console's history: a fixed-length ring of samples, filled in the background while
the web application runs."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from streams.io.consumer_lag import LagReport, PartitionLag
from streams.scorer import console_history
from streams.scorer.console_history import History, Sample, sample_of


def sample(t: float, events: int = 0) -> Sample:
    return Sample(t, events, events, {}, 1, 0, None, None, None, None)


def test_the_ring_keeps_the_newest_samples_and_no_more() -> None:
    history = History(capacity=3)
    for t in range(5):
        history.add(sample(float(t)))
    assert len(history) == history.capacity == 3
    assert [s.t for s in history.since()] == [2.0, 3.0, 4.0]
    assert [s.t for s in history.since(3.0)] == [4.0]
    assert history.since(4.0) == []


def test_an_hour_of_samples_by_default() -> None:
    assert console_history.CAPACITY * console_history.INTERVAL_S == 3600
    assert History().capacity == console_history.CAPACITY
    with pytest.raises(ValueError):
        History(capacity=0)


def test_a_sample_holds_what_the_charts_draw() -> None:
    lag = LagReport(
        99.0,
        (
            PartitionLag("scorer", "g", "pv", 0, 5, 7, 2),
            PartitionLag("scorer", "g", "pv", 1, 3, 4, 1),
            PartitionLag("trainer", "t", "pv", 0, None, 7, 7),
        ),
    )
    counters = {"events_in": 12, "events_out": 10, "dead_letters": {"undecodable": 2}}
    served = {"version": 3, "judged": 8, "hit@5": 0.25, "mrr@5": 0.125, "age_s": 4.5}
    shown = sample_of(100.0, counters, served, 5, lag).as_dict(5)
    assert shown == {
        "t": 100.0,
        "events_in": 12,
        "events_out": 10,
        "dead_letters": {"undecodable": 2},
        "version": 3,
        "judged": 8,
        "hit@5": 0.25,
        "mrr@5": 0.125,
        "age_s": 4.5,
        "lag": {"scorer": 3, "trainer": 7},
    }
    json.dumps(shown, allow_nan=False)
    # A read older than two intervals, or a failed one, is no lag figure.
    stale = 100.0 + 2 * console_history.INTERVAL_S + 1
    assert sample_of(stale, counters, served, 5, lag).lag is None
    failed = LagReport(99.0, lag.partitions, "broker away")
    assert sample_of(100.0, counters, served, 5, failed).lag is None
    assert sample_of(100.0, counters, served, 5, None).lag is None


def test_samples_are_taken_while_the_web_application_runs() -> None:
    taken: list[float] = []

    async def take() -> Sample:
        taken.append(0.0)
        if len(taken) == 2:
            raise RuntimeError("one bad sample")  # logged and skipped
        return sample(float(len(taken)))

    async def run() -> tuple[int, int]:
        history = History()
        app = web.Application()
        console_history.sample_in_background(app, history, take, interval_s=0.01)
        runner = web.AppRunner(app)
        await runner.setup()
        for _ in range(500):
            if len(history) >= 3:
                break
            await asyncio.sleep(0.01)
        await runner.cleanup()
        await app.cleanup()  # a second cleanup (Faust's stop_server does one) is harmless
        stopped = len(taken)
        await asyncio.sleep(0.05)
        assert len(taken) == stopped  # cancelled with the application
        return len(history), len(taken)

    kept, tries = asyncio.run(run())
    assert kept >= 3 and tries == kept + 1
