"""The hybrid's batch layer outside the model: fit in bulk, signed file, live swap in the
trainer (the online layer's state is kept across the swap)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from online_model.errors import (
    ModelError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotVerificationError,
)
from online_model.models.covisit import Covisitation
from online_model.models.covisit.batch import OrderedEvents
from online_model.models.hybrid import Hybrid
from online_model.models.itemitem import ItemItem, fit_item_item
from online_model.models.itemitem_batch import fit_in_bulk
from online_model.persist.batch_layer_file import (
    BatchLayerRecord,
    dump_batch_layer,
    load_batch_layer,
)
from online_model.persist.snapshot import Snapshot, SnapshotMeta, dump_snapshot, load_snapshot
from online_model.persist.snapshot_delta import ChainPosition
from streams.testing import ListEventSource
from streams.trainer.batch_layer_watch import BatchLayerWatcher
from streams.trainer.loop import Trainer
from tests.support.hybrid_events import Event, make_events, probes
from tests.unit.test_snapshot_deltas import assert_same_state

KEY = b"k" * 32


def _same_layer(a: ItemItem, b: ItemItem) -> None:
    assert a.pages == b.pages and a.params == b.params and a.n_events == b.n_events
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.neighbour, b.neighbour)
    assert np.array_equal(a.weight, b.weight)


# -- the fit in bulk ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "n_slices"),
    [
        ({}, 1),
        ({}, 3),
        ({"history_length": 5, "max_pages": 20, "l2": 10.0, "n_neighbours": 7}, 4),
        ({"history_length": 2, "max_pages": 9, "l2": 1.0}, 2),
    ],
)
def test_the_fit_in_bulk_equals_the_fit_of_one_process(
    params: dict[str, Any], n_slices: int
) -> None:
    events = make_events(seed=len(params) + n_slices)
    reference = fit_item_item(events, **params)
    got = fit_in_bulk(OrderedEvents.from_rows(events), params, n_slices=n_slices)
    _same_layer(got, reference)  # the same counts solve to the same weights, bit for bit


def test_the_fit_in_bulk_of_an_empty_log_is_an_empty_layer() -> None:
    layer = fit_in_bulk(OrderedEvents.from_rows([]), {}, n_slices=2)
    assert layer.n_pages == 0 and layer.n_events == 0 and layer.distribution(["x"]) is None


# -- the file -------------------------------------------------------------------------------
def _record(events: Sequence[Event], offsets: dict[str, dict[int, int]]) -> BatchLayerRecord:
    position = {t: {str(p): o for p, o in parts.items()} for t, parts in offsets.items()}
    layer = fit_item_item(events, position=position)
    data = dump_batch_layer(SnapshotMeta("m", version=1, offsets=offsets), layer, KEY)
    return load_batch_layer(data, KEY)


def test_a_batch_layer_file_round_trips_and_is_refused_as_anything_else() -> None:
    events = make_events(1_000)
    layer = fit_item_item(events, position={"t": {"0": 1_000}})
    data = dump_batch_layer(SnapshotMeta("m", version=4, offsets={"t": {0: 1_000}}), layer, KEY)
    record = load_batch_layer(data, KEY)
    _same_layer(record.layer, layer)
    assert record.meta.offsets == {"t": {0: 1_000}} and record.meta.events_seen == 1_000
    assert record.layer.position == {"t": {"0": 1_000}}

    with pytest.raises(SnapshotVerificationError):
        load_batch_layer(data, b"another key")
    altered = bytearray(data)
    altered[len(data) // 2] ^= 1
    with pytest.raises(SnapshotError):
        load_batch_layer(bytes(altered), KEY)
    # Neither can be taken for the other: a snapshot is no batch layer, and back.
    with pytest.raises(SnapshotFormatError, match="not a known model class"):
        load_snapshot(data, KEY, allow_pickle=False)
    snapshot = dump_snapshot(Snapshot(SnapshotMeta("m"), Hybrid()), KEY, allow_pickle=False)
    with pytest.raises(SnapshotFormatError, match="not a batch layer file"):
        load_batch_layer(snapshot, KEY)


# -- the swap in the trainer -------------------------------------------------------------------
class Layers:
    """A batch layer store in memory: ``put`` publishes, a ``None`` record does not verify."""

    def __init__(self) -> None:
        self.records: dict[int, BatchLayerRecord | None] = {}

    def put(self, record: BatchLayerRecord | None) -> None:
        self.records[len(self.records) + 1] = record

    def newest_version(self) -> int | None:
        return max(self.records, default=None)

    def load(self, version: int) -> BatchLayerRecord:
        record = self.records[version]
        if record is None:
            raise SnapshotVerificationError("snapshot MAC does not match")
        meta = SnapshotMeta(record.meta.model_name, version=version, offsets=record.meta.offsets)
        return BatchLayerRecord(meta, record.layer)


class Snapshots:
    """A snapshot store in memory that keeps what it was given, signed and loaded back."""

    model_name = "m"
    last_published_bytes = 0

    def __init__(self) -> None:
        self.published: list[Snapshot] = []

    def publish_full(
        self, snap: Snapshot, make_current: bool = True, state: Any = None
    ) -> ChainPosition:
        data = dump_snapshot(snap, KEY, allow_pickle=False)
        self.last_published_bytes = len(data)
        self.published.append(load_snapshot(data, KEY, allow_pickle=False))
        n = len(self.published)
        return ChainPosition(n, "00", n, "00", 0)


class Deltas(Snapshots):
    """:class:`Snapshots` that also takes deltas, keeping the last of each kind."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []
        self.full: Any = None
        self.delta: Any = None

    def publish_full(
        self, snap: Snapshot, make_current: bool = True, state: Any = None
    ) -> ChainPosition:
        self.kinds.append("full")
        self.full = snap.model
        super().publish_full(snap, make_current)
        return ChainPosition(len(self.kinds), "00", len(self.kinds), "00", 0)

    def publish_delta(self, meta: Any, model: Any, changes: Any, after: Any, state: Any) -> Any:
        self.kinds.append("delta")
        self.delta = changes
        return ChainPosition(len(self.kinds), "00", after.base_version, "00", after.sequence + 1)


def _values(events: Sequence[Event]) -> list[bytes]:
    return [f"{u}|{p}|{t}".encode() for u, p, t in events]


def _hybrid_trainer(events: Sequence[Event], layers: Layers, store: Snapshots) -> Trainer:
    """A hybrid's trainer over a log holding ``events`` so far."""
    values = _values(events)

    def decode(value: bytes | None) -> dict[str, Any]:
        user, page, ts = (value or b"").decode().split("|")
        return {"user_id": user, "page_id": page, "ts": int(ts)}

    trainer = Trainer(
        Hybrid(batch_weight=0.5),
        store,  # type: ignore[arg-type]
        ListEventSource(values),
        decode,
        snapshot_interval=0.0,
        max_records=500,
        poll_timeout=0.0,
        full_every=0,
        batch_layers=BatchLayerWatcher(layers, check_every=0.0),  # type: ignore[arg-type]
    )
    trainer.source.assign({})
    return trainer


def _until(trainer: Trainer, n_events: int) -> None:
    while trainer.events_learned < n_events:
        trainer.step()


def test_the_trainer_swaps_a_new_batch_layer_in_and_keeps_its_online_layer() -> None:
    events = make_events()
    layers, store = Layers(), Snapshots()
    trainer = _hybrid_trainer(events[:1_500], layers, store)
    _until(trainer, 1_500)
    model = trainer.model
    assert isinstance(model, Hybrid) and model.batch_layer is None
    # No batch layer: it served exactly today's covisit.
    plain = Covisitation()
    for user, page, ts in events[:1_500]:
        plain.learn_one(user, page, x={"ts": ts})
    assert probes(model, events[:1_500]) == probes(plain, events[:1_500])

    # A layer covering the first 1000 events; the trainer has read 1500.
    layers.put(_record(events[:1_000], {"t": {0: 1_000}}))
    online_before = model.online.state_arrays()
    recent_before = {user: list(pages) for user, pages in model._recent.items()}
    trainer.step()  # the log is at 1500: nothing new to learn, only the swap
    assert trainer.events_learned == 1_500
    assert model.batch_layer is not None and model.batch_layer.position == {"t": {"0": 1_000}}
    assert trainer.batch_layers.swaps == 1
    online_after = model.online.state_arrays()
    assert online_after.values == online_before.values
    assert online_after.strings == online_before.strings
    assert all(np.array_equal(online_after.arrays[n], a) for n, a in online_before.arrays.items())
    assert {user: list(pages) for user, pages in model._recent.items()} == recent_before
    assert model.n_events_learned == 1_500
    # The snapshot published right after carries the batch layer and the online layer.
    snap = store.published[-1]
    assert isinstance(snap.model, Hybrid) and snap.model.batch_layer is not None
    assert snap.model.batch_layer.position == {"t": {"0": 1_000}}
    assert snap.meta.offsets == {"t": {0: 1_500}} and snap.model.n_events_learned == 1_500
    assert probes(snap.model, events[:1_500]) == probes(model, events[:1_500])
    assert probes(model, events[:1_500]) != probes(plain, events[:1_500])  # the mix serves

    # A layer past what the trainer read waits for it; a layer that does not verify is
    # skipped; learning goes on throughout.
    layers.put(None)
    trainer.step()
    assert trainer.batch_layers.refused == 1 and model.batch_layer.n_events == 1_000
    layers.put(_record(events[:2_500], {"t": {0: 2_500}}))
    trainer.source.values += _values(events[1_500:])  # type: ignore[attr-defined]
    _until(trainer, 2_000)
    assert model.batch_layer.n_events == 1_000  # the trainer is at 2000 < 2500
    _until(trainer, len(events))
    trainer.step()
    assert model.batch_layer.n_events == 2_500 and trainer.batch_layers.swaps == 2

    # The online layer learned every event once, as if no swap had happened.
    for user, page, ts in events[1_500:]:
        plain.learn_one(user, page, x={"ts": ts})
    assert probes(model.online, events) == probes(plain, events)
    assert model.n_events_learned == len(events)


def test_a_restarted_trainer_keeps_the_layer_it_resumed_with() -> None:
    events = make_events(1_200)
    layers = Layers()
    record = _record(events[:1_000], {"t": {0: 1_000}})
    layers.put(record)
    resumed = Hybrid()
    for user, page, ts in events:
        resumed.learn_one(user, page, x={"ts": ts})
    resumed.set_batch_layer(record.layer)
    watcher = BatchLayerWatcher(layers, check_every=0.0)  # type: ignore[arg-type]
    assert not watcher.check(resumed, {"t": {0: 1_200}})  # it holds that layer already
    assert watcher.swaps == 0 and watcher.version == 1 and resumed.batch_layer is record.layer
    # Another model than a hybrid never looks for batch layers.
    assert not BatchLayerWatcher(layers, 0.0).check(Covisitation(), {"t": {0: 1_200}})  # type: ignore[arg-type]


# -- delta snapshots of the hybrid ---------------------------------------------------------------
def test_a_chain_of_hybrid_deltas_rebuilds_the_full_state_and_names_its_batch_layer() -> None:
    events = make_events(4_000)
    model = Hybrid(max_users=40, batch_weight=0.3, batch_rate=0.05)
    for user, page, ts in events[:1_000]:
        model.learn_one(user, page, x={"ts": ts})
    base = model.state_arrays()
    model.mark_published()
    position = 1_000
    swaps = 0
    for step in range(12):
        for user, page, ts in events[position : position + 150 + 37 * step]:
            model.learn_one(user, page, x={"ts": ts})
        position += 150 + 37 * step
        if step in (3, 8):  # a new batch layer: no delta, the chain restarts from a full one
            model.set_batch_layer(model.fit_batch_layer(events[: position - 100]))
            assert model.state_delta() is None
            base = model.state_arrays()
            model.mark_published()
            swaps += 1
            continue
        changes = model.state_delta()
        assert changes is not None and "batch.neighbours.weight" not in changes.arrays
        after = Hybrid.apply_state_delta(base, changes)
        assert_same_state(after, model.state_arrays())
        model.mark_published()
        base = after
    assert swaps == 2 and model.batch_layer is not None
    served = Hybrid.from_state(model._get_params(), base)
    assert probes(served, events[:position]) == probes(model, events[:position])
    # A delta applies only to a base holding the batch layer it was learned with.
    model.learn_one("someone", "x")
    changes = model.state_delta()
    assert changes is not None
    older = Hybrid()
    for user, page, ts in events[:1_000]:
        older.learn_one(user, page, x={"ts": ts})
    older.set_batch_layer(older.fit_batch_layer(events[:900]))
    with pytest.raises(ModelError, match="another batch layer"):
        Hybrid.apply_state_delta(older.state_arrays(), changes)


def test_the_trainer_publishes_hybrid_deltas_until_a_new_batch_layer() -> None:
    events = make_events(2_000)
    layers, store = Layers(), Deltas()
    trainer = _hybrid_trainer(events[:1_000], layers, store)  # type: ignore[arg-type]
    trainer.full_every = 50
    _until(trainer, 1_000)
    source: Any = trainer.source

    def learn(start: int, n: int = 20) -> str:
        source.values += _values(events[start : start + n])
        trainer.step()
        return store.kinds[-1]

    trainer.step()  # caught up: what catching up left unpublished goes out now
    assert store.kinds[0] == "full"
    assert [learn(1_000), learn(1_020)] == ["delta", "delta"]
    layers.put(_record(events[:800], {"t": {0: 800}}))
    trainer.step()
    assert store.kinds[-1] == "full"  # the new batch layer goes out in a full snapshot
    assert store.full.batch_layer is not None and store.full.batch_layer.n_events == 800
    assert [learn(1_040), learn(1_060)] == ["delta", "delta"]  # deltas again, naming it
    assert store.delta.values["batch_ref"] == {"n_events": 800, "position": {"t": {"0": 800}}}
