"""The trainer bounds the time it spends publishing: a slow publish (a full snapshot of
a large model while catching up) pushes the next one back, a fast one does not."""

from __future__ import annotations

from typing import Any

import pytest

import streams.trainer.loop as loop
from online_model.popularity import DecayedPopularity
from online_model.snapshot_delta import ChainPosition
from streams.trainer.loop import Trainer
from tests.support.trainer import ListSource


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class SlowStore:
    """Publishing takes ``cost`` seconds of the fake clock."""

    model_name = "m"
    last_published_bytes = 1_000

    def __init__(self, clock: Clock, cost: float) -> None:
        self.clock, self.cost, self.published = clock, cost, 0

    def publish_full(self, snap: Any, make_current: bool = True) -> ChainPosition:
        self.clock.now += self.cost
        self.published += 1
        return ChainPosition(self.published, "00", self.published, "00", 0)


@pytest.mark.parametrize(("cost", "gap"), [(0.05, 1.0), (1.0, 5.0)])
def test_the_next_publish_waits_for_publishing_to_stay_a_fifth_of_the_time(
    monkeypatch: pytest.MonkeyPatch, cost: float, gap: float
) -> None:
    clock = Clock()
    monkeypatch.setattr(loop.time, "monotonic", clock.monotonic)
    store = SlowStore(clock, cost)
    trainer = Trainer(
        DecayedPopularity(),
        store,  # type: ignore[arg-type]
        ListSource([]),
        lambda b: {},
        snapshot_interval=1.0,
        full_every=0,
    )
    trainer._dirty = True
    trainer.publish()
    started = clock.now - cost
    trainer._dirty = True
    clock.now = started + gap - 0.01
    trainer.step()
    assert store.published == 1  # not due yet
    clock.now = started + gap
    trainer.step()
    assert store.published == 2
