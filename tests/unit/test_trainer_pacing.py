"""Snapshot pacing of the trainer: every interval when live, less often while behind."""

from __future__ import annotations

from typing import Any

from online_model.popularity import DecayedPopularity
from online_model.trainer import RawEvent, Trainer


class Source:
    def __init__(self, batches: list[int]) -> None:
        self.batches = batches
        self.offset = 0

    def poll(self, max_records: int, timeout: float) -> list[RawEvent]:
        n = self.batches.pop(0) if self.batches else 0
        events = [RawEvent("pv", 0, self.offset + i, b"x") for i in range(n)]
        self.offset += n
        return events


def trainer(batches: list[int]) -> tuple[Trainer, list[int]]:
    published: list[int] = []
    t = Trainer(
        DecayedPopularity(),
        store=None,
        source=Source(batches),  # type: ignore[arg-type]
        decode=lambda b: {"user_id": "u", "page_id": "p", "ts": 1},
        snapshot_interval=0.0,
        max_records=3,
        catch_up_interval=3600.0,
    )

    def publish() -> Any:
        published.append(t.events_learned)

    t.publish = publish  # type: ignore[method-assign]
    return t, published


def test_no_snapshot_per_poll_while_behind_then_one_when_live() -> None:
    t, published = trainer([3, 3, 3, 1, 2])
    for _ in range(5):
        t.step()
    assert published == [10, 12]  # nothing during the three full polls


def test_live_trainer_publishes_at_its_interval() -> None:
    t, published = trainer([1, 2, 1])
    for _ in range(3):
        t.step()
    assert published == [1, 3, 4]
