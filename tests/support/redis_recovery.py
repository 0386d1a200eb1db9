"""The second half of a Redis outage test, after the server (or master) is back: the
trainer republishes, the scorer swaps to it and writes histories again, then traffic stops
and every page view's answer is read (tests/reliability/test_redis_outage.py and
test_redis_cluster_outage.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.outages import Traffic
from tests.support.scorer import http_text
from tests.support.topics import Answers, read_answers


@dataclass
class Recovery:
    republished: int | None
    republish_s: float
    produced: int
    answers: Answers
    metrics: str
    alive: bool


def recover_and_drain(
    s: Settings,
    store: SnapshotStore,
    traffic: Traffic,
    scorer: ChildProcess,
    trainer: ChildProcess,
    served_version: Callable[[], int],
    history: Callable[[], int],
    recovered_at: float,
) -> Recovery:
    """Wait for the republish, the swap and histories growing; stop traffic, read every
    answer, and stop both processes (each must exit 0)."""
    republished = wait_for(store.current_version, 30, "the trainer to publish again")
    republish_s = time.monotonic() - recovered_at
    wait_for(
        lambda: served_version() == store.current_version(),
        20,
        "the scorer to swap to the republished snapshot",
    )
    grows_from = history()
    wait_for(lambda: history() > grows_from, 20, "history growing")
    produced = traffic.stop()
    answers = read_answers(s, set(traffic.event_ids), timeout=45)
    metrics = http_text(f"http://127.0.0.1:{s.web_port}/metrics")
    alive = scorer.alive() and trainer.alive()
    assert scorer.stop() == 0, scorer.output()[-3000:]
    assert trainer.stop() == 0, trainer.output()[-3000:]
    return Recovery(republished, republish_s, produced, answers, metrics, alive)
