"""The trainer bounds the time it spends publishing while it is behind the log: slow
publishes (full snapshots of a large model while catching up) push the next one back,
fast ones do not, and one slow publish among fast ones (the periodic full snapshot
between deltas) delays the next one little. Once caught up, it publishes every
snapshot_interval whatever a publish costs."""

from __future__ import annotations

import random
from typing import Any

import pytest

import streams.trainer.loop as loop
from online_model.models.covisit import Covisitation
from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot_delta import ChainPosition
from streams.testing import ListEventSource
from streams.trainer.loop import Trainer
from tests.unit.test_snapshot_deltas import assert_same_state


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

    def publish_full(
        self, snap: Any, make_current: bool = True, state: Any = None
    ) -> ChainPosition:
        self.clock.now += self.cost
        self.published += 1
        return ChainPosition(self.published, "00", self.published, "00", 0)


def _trainer(store: SlowStore, backlog: int) -> Trainer:
    trainer = Trainer(
        DecayedPopularity(),
        store,  # type: ignore[arg-type]
        ListEventSource([b"p"] * backlog),
        lambda b: {"user_id": "u", "page_id": b.decode(), "ts": 0},
        snapshot_interval=1.0,
        full_every=0,
        max_records=1,
        poll_timeout=0.0,
    )
    trainer.source.assign({})
    return trainer


@pytest.mark.parametrize(
    ("costs", "gap"),
    [
        ([0.05] * 10, 1.0),  # cheap deltas: every snapshot_interval
        ([1.0] * 30, 10.0),  # full snapshots taking 1 s: one every 10 s
        ([0.05] * 20 + [1.0], 2.4),  # one full snapshot among deltas: a little later
        ([0.5], 5.0),  # the first publish (a full one) took 0.5 s: the next in 5 s
        ([0.2, 0.4, 0.6], 4.3),  # growing full snapshots (their weighted mean: 0.43 s)
    ],
)
def test_while_behind_the_next_publish_waits_for_publishing_to_stay_a_tenth_of_the_time(
    monkeypatch: pytest.MonkeyPatch, costs: list[float], gap: float
) -> None:
    clock = Clock()
    monkeypatch.setattr(loop.time, "monotonic", clock.monotonic)
    store = SlowStore(clock, costs[0])
    trainer = _trainer(store, backlog=100)  # every poll comes back full
    for cost in costs:
        store.cost = cost
        trainer._dirty = True
        trainer.publish()
    started = clock.now - costs[-1]
    clock.now = started + gap - 0.02
    trainer.step()
    assert store.published == len(costs)  # not due yet
    clock.now = started + gap + 0.02
    trainer.step()
    assert store.published == len(costs) + 1


def test_once_caught_up_it_publishes_every_interval_however_long_publishing_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(loop.time, "monotonic", clock.monotonic)
    store = SlowStore(clock, 1.0)
    trainer = _trainer(store, backlog=1)
    for _ in range(30):  # slow publishes while behind
        trainer._dirty = True
        trainer.publish()
    trainer.step()  # learns the last event: the log is read to its end
    assert store.published == 30
    clock.now += 0.02  # the last publish started 1.02 s ago: one snapshot_interval
    trainer.step()  # a short (empty) poll: caught up
    assert store.published == 31


class ChainStore:
    """Full snapshots of a fixed size; deltas extend the chain."""

    model_name = "m"

    def __init__(self, full_bytes: int) -> None:
        self.last_published_bytes = full_bytes
        self.kinds: list[str] = []

    def publish_full(
        self, snap: Any, make_current: bool = True, state: Any = None
    ) -> ChainPosition:
        self.kinds.append("full")
        return ChainPosition(len(self.kinds), "00", len(self.kinds), "00", 0)

    def publish_delta(self, meta: Any, model: Any, changes: Any, chain: Any, state: Any) -> Any:
        self.kinds.append("delta")
        return ChainPosition(len(self.kinds), "00", chain.base_version, "00", chain.sequence + 1)


def _assert_publishes(
    monkeypatch: pytest.MonkeyPatch, model: Any, steps: list[tuple[int, str, int]]
) -> None:
    """Feed ``model``'s trainer 50 pages, then 600 new ones and one seen page, a batch of
    ``steps`` at a time, publishing after each into a store that refuses deltas over
    4,000 bytes: each step's ``(batch, kind, deltas_built)`` is the kind published and
    how many deltas the model was asked to build so far."""
    pages = [f"p{i}".encode() for i in range(50)]
    pages += [f"q{i}".encode() for i in range(600)] + [b"p1"]
    store = ChainStore(full_bytes=8_000)  # deltas over 4,000 bytes are refused
    built = []
    state_delta = model.state_delta
    monkeypatch.setattr(model, "state_delta", lambda: built.append(1) or state_delta())
    trainer = Trainer(
        model,
        store,  # type: ignore[arg-type]
        ListEventSource(pages),
        lambda b: {"user_id": "u", "page_id": b.decode(), "ts": 0},
        full_every=20,
    )
    trainer.source.assign({})
    for batch, kind, deltas_built in steps:
        trainer.max_records = batch
        trainer.step()
        trainer.publish()
        assert (store.kinds[-1], len(built)) == (kind, deltas_built)


def test_a_delta_as_large_as_a_refused_one_is_not_built_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Catching up, each interval changes most of the model: building its delta, only to
    publish a full snapshot instead, would cost the trainer twice (a model that cannot
    estimate its delta's size: the trainer learns from the refusals)."""
    model = DecayedPopularity()
    monkeypatch.setattr(model, "delta_nbytes", None)
    _assert_publishes(
        monkeypatch,
        model,
        [
            (50, "full", 0),  # the first publish is a full one
            (300, "full", 1),  # 300 new pages: a delta of ~7 kB, built and refused
            (300, "full", 1),  # as many events again: not built
            (1, "delta", 2),  # one event: built and published
        ],
    )


@pytest.mark.parametrize("model_class", [DecayedPopularity, Covisitation])
def test_a_delta_estimated_too_large_is_never_built(
    monkeypatch: pytest.MonkeyPatch, model_class: type
) -> None:
    """A model that tells its delta's size up front is not asked to build a delta that
    would be refused, not even once."""
    _assert_publishes(
        monkeypatch, model_class(), [(50, "full", 0), (600, "full", 0), (1, "delta", 1)]
    )


def test_the_end_of_a_backlog_is_published_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reaching the end of the log after a backlog, the trainer publishes right away, not
    up to snapshot_interval later: the snapshot then holds every event there was."""
    clock = Clock()
    monkeypatch.setattr(loop.time, "monotonic", clock.monotonic)
    store = SlowStore(clock, 0.0)
    trainer = _trainer(store, backlog=15)  # max_records=1: 15 full polls
    for _ in range(15):
        trainer.step()
        clock.now += 0.1  # 1.5 s of learning: one publish, at 1 s
    assert store.published == 1
    trainer.step()  # empty: caught up 0.5 s after that publish
    assert store.published == 2
    assert trainer.offsets == {"t": {0: 15}}


def test_a_short_burst_does_not_publish_before_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(loop.time, "monotonic", clock.monotonic)
    store = SlowStore(clock, 0.0)
    trainer = _trainer(store, backlog=3)
    for _ in range(4):  # 3 full polls in 0.3 s, then an empty one
        trainer.step()
        clock.now += 0.1
    assert store.published == 0  # still every snapshot_interval


class TimedSource(ListEventSource):
    def __init__(self) -> None:
        super().__init__([])
        self.timeouts: list[float] = []

    def poll(self, max_records: int, timeout: float) -> list[Any]:
        self.timeouts.append(timeout)
        return super().poll(max_records, 0.0)


def test_a_poll_does_not_wait_past_the_next_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Caught up, a poll waits at most until the next snapshot is due: a snapshot is not
    held back by a poll waiting for events that do not come."""
    clock = Clock()
    monkeypatch.setattr(loop.time, "monotonic", clock.monotonic)
    source = TimedSource()
    trainer = Trainer(
        DecayedPopularity(),
        SlowStore(clock, 0.0),  # type: ignore[arg-type]
        source,
        lambda b: {"user_id": "u", "page_id": "p", "ts": 0},
        snapshot_interval=0.5,
        poll_timeout=0.2,
    )
    trainer.step()
    trainer._dirty = True
    clock.now += 0.4
    trainer.step()
    clock.now += 0.2
    trainer._dirty = False  # nothing to publish: a poll may wait as long as it likes
    trainer.step()
    assert source.timeouts == [0.2, pytest.approx(0.1), 0.2]


class StateStore(ChainStore):
    """Keeps the state each full snapshot was encoded from."""

    def __init__(self, full_bytes: int) -> None:
        super().__init__(full_bytes)
        self.states: list[Any] = []

    def publish_full(self, snap: Any, make_current: bool = True, state: Any = None) -> Any:
        self.states.append(state)
        return super().publish_full(snap, make_current)


def test_a_periodic_full_snapshot_is_the_published_state_plus_the_delta(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between deltas the trainer keeps the state it published up to date, so the full
    snapshot due every full_every deltas is not rebuilt from the model's dicts, and it
    is exactly what the dicts would give."""
    rng = random.Random(2)
    pages = [f"p{rng.randrange(40)}".encode() for _ in range(400)]
    store = StateStore(full_bytes=10**9)
    model = Covisitation()
    trainer = Trainer(
        model,
        store,  # type: ignore[arg-type]
        ListEventSource(pages),
        lambda b: {"user_id": f"u{len(b) % 7}", "page_id": b.decode(), "ts": 0},
        full_every=3,
        max_records=50,
    )
    trainer.source.assign({})
    full_builds = []
    state_arrays = Covisitation.state_arrays
    monkeypatch.setattr(
        Covisitation, "state_arrays", lambda self: full_builds.append(1) or state_arrays(self)
    )
    for _ in range(8):
        trainer.step()
        trainer.publish()
        if store.kinds[-1] == "full":
            monkeypatch.setattr(Covisitation, "state_arrays", state_arrays)
            assert_same_state(store.states[-1], model.state_arrays())
            monkeypatch.setattr(
                Covisitation,
                "state_arrays",
                lambda self: full_builds.append(1) or state_arrays(self),
            )
    assert store.kinds == ["full", "delta", "delta", "delta", "full", "delta", "delta", "delta"]
    assert len(full_builds) == 1  # the first one only
