"""Delta snapshots through the real store: the trainer publishes deltas between full
snapshots, every version (delta or full) loads as exactly the model the trainer had,
pruning keeps what kept deltas build on, promote/rollback take delta versions, a scorer
applies only the deltas after the snapshot it holds, and a restarted trainer resumes
from a delta version exactly."""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from online_model.models.covisit import Covisitation
from online_model.persist.model_file import _tensor_bytes
from streams.cli import main
from streams.io.codec import PAGE_VIEW, AvroCodec
from streams.io.producer import page_view
from streams.scorer.model_holder import ModelHolder
from streams.services.processes import wait_for
from streams.state.snapshot_store import SnapshotStore
from streams.testing import ListEventSource
from streams.trainer.loop import Trainer
from tests.support.fixtures import StoreFactory

T0 = 1_700_000_000_000
CODEC = AvroCodec.bundled(PAGE_VIEW)


def events(start: int, n: int) -> list[dict[str, Any]]:
    return [
        page_view(f"u{(i * 13) % 97}", f"p{(i * 7) % 61 + i // 50}", T0 + 1000 * i)
        for i in range(start, start + n)
    ]


def reference(n: int) -> bytes:
    """The full state of a model that learned the first ``n`` events in one go."""
    model = Covisitation()
    for view in events(0, n):
        model.learn_one(view["user_id"], view["page_id"], x={"ts": view["ts"]})
    return _tensor_bytes(model.state_arrays())


def state_of(store: SnapshotStore, version: int) -> tuple[int, bytes]:
    snap = store.load(version)
    return snap.meta.events_seen, _tensor_bytes(snap.model.state_arrays())  # type: ignore[attr-defined]


@contextlib.contextmanager
def running(store: SnapshotStore, source: ListEventSource, full_every: int) -> Iterator[Trainer]:
    """A trainer learning ``source`` in a thread, publishing after every poll; stopped
    (with its final publish) on exit. Polls return 25 records: many small deltas."""
    trainer = Trainer(
        Covisitation(),
        store,
        source,
        CODEC.decode,
        snapshot_interval=0.0,
        full_every=full_every,
        max_records=25,
    )
    stop = threading.Event()
    thread = threading.Thread(target=trainer.run, args=(stop,))
    thread.start()
    try:
        yield trainer
    finally:
        stop.set()
        thread.join(30)


def learned(trainer: Trainer, n: int) -> None:
    wait_for(
        lambda: trainer.offsets.get("t", {}).get(0) == n and not trainer._dirty,
        30,
        f"{n} events learned and published",
    )


def train(store: SnapshotStore, source: ListEventSource, n: int, full_every: int) -> Trainer:
    with running(store, source, full_every) as trainer:
        learned(trainer, n)
    return trainer


def fill(source: ListEventSource, start: int, n: int) -> None:
    source.values.extend(CODEC.encode(view) for view in events(start, n))


@pytest.fixture(autouse=True)
def deltas_of_any_size_after_every_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each poll of these small logs changes much of the model, and the first full
    # snapshot is tiny: keep publishing deltas of any size (the size rule is checked on
    # its own below).
    monkeypatch.setattr(Trainer, "MAX_DELTA_SHARE", math.inf)
    # And publish after every poll, however long the previous publish took.
    monkeypatch.setattr(Trainer, "MAX_PUBLISH_SHARE", math.inf)


def test_trainer_publishes_deltas_that_load_as_exactly_its_model(store: SnapshotStore) -> None:
    source = ListEventSource([])
    fill(source, 0, 600)
    trainer = train(store, source, 600, full_every=4)
    deltas = store.delta_hints()
    versions = store.versions()
    assert trainer.deltas_published >= 4 and len(deltas) >= 4
    assert set(deltas) < set(versions)  # full ones between
    # A full snapshot at least every 4 deltas: no chain is longer than 4.
    for version in deltas:
        length, v = 0, version
        while v in deltas:
            v, length = deltas[v], length + 1
        assert length <= 4 and v not in deltas
    for version in versions:
        seen, state = state_of(store, version)
        assert state == reference(seen), version


def test_a_restarted_trainer_resumes_from_a_delta_exactly(store: SnapshotStore) -> None:
    source = ListEventSource([])
    fill(source, 0, 300)
    first = train(store, source, 300, full_every=50)
    newest = store.current_version()
    assert newest in store.delta_hints() and first.last_version == newest
    fill(source, 300, 200)
    second = train(store, source, 500, full_every=50)
    assert second.resumed_from == newest
    assert second.events_learned == 200  # nothing learned twice, nothing skipped
    seen, state = state_of(store, store.current_version())  # type: ignore[arg-type]
    assert seen == 500 and state == reference(500)


def _chains(newest: list[int], hints: dict[int, int]) -> set[int]:
    """The versions ``newest`` need: themselves and the bases their deltas build on."""
    needed = set(newest)
    for v in newest:
        while v in hints:
            v = hints[v]
            needed.add(v)
    return needed


def test_pruning_keeps_the_chain_of_every_kept_delta(store_factory: StoreFactory) -> None:
    # Publish without pruning first: how many versions a trainer publishes depends on
    # how its polls fall, so the number kept is chosen from what was published.
    store = store_factory(keep=1_000)
    source = ListEventSource([])
    fill(source, 0, 400)
    train(store, source, 400, full_every=3)
    published = store.versions()
    hints = store.delta_hints()
    # The fewest newest versions whose chains reach further back than themselves, with
    # older versions left to prune (a full snapshot at least every 4 versions).
    keep = next(
        k
        for k in range(1, len(published))
        if k < len(_chains(published[:k], hints)) < len(published)
    )
    needed = _chains(published[:keep], hints)

    pruning = store_factory(keep=keep)
    pruning._prune_old()
    kept = pruning.versions()
    assert set(kept) == needed  # the chains of the newest are kept, nothing else
    for version in kept:
        pruning.load(version)  # every kept version materialises: nothing it needs is gone


def test_promote_and_rollback_serve_delta_versions(store: SnapshotStore) -> None:
    source = ListEventSource([])
    fill(source, 0, 200)
    train(store, source, 200, full_every=50)
    deltas = sorted(store.delta_hints())
    target = deltas[-2]
    store.promote(target)
    assert store.current_version() == target and store.is_pinned()
    seen, state = state_of(store, target)
    assert state == reference(seen)
    rolled = store.rollback()
    assert rolled < target and store.current_version() == rolled
    seen, state = state_of(store, rolled)
    assert state == reference(seen)


def test_a_scorer_applies_only_the_deltas_after_what_it_holds(store: SnapshotStore) -> None:
    source = ListEventSource([])
    holder = ModelHolder()
    with running(store, source, full_every=50) as trainer:
        fill(source, 0, 100)
        learned(trainer, 100)
        assert holder.refresh(store)
        held = holder.current.version
        # The base and every delta up to the held one disappear: what comes next can
        # only be applied to the snapshot the holder has.
        for version in store.versions():
            store.redis.delete(store.keys.snapshot(version))
        fill(source, 100, 100)
        learned(trainer, 200)
    newest = store.current_version()
    assert newest is not None and newest > held and newest in store.delta_hints()
    assert holder.refresh(store) and holder.current.version == newest
    assert _tensor_bytes(holder.current.model.state_arrays()) == reference(200)  # type: ignore[attr-defined]
    assert ModelHolder().refresh(store) is False  # from scratch: the base is gone


def test_after_a_gap_a_scorer_loads_the_new_chain_from_its_base(store: SnapshotStore) -> None:
    source = ListEventSource([])
    fill(source, 0, 100)
    train(store, source, 100, full_every=50)
    holder = ModelHolder()
    assert holder.refresh(store)
    fill(source, 100, 100)
    train(store, source, 200, full_every=50)  # a restart: a new full snapshot, then deltas
    newest = store.current_version()
    assert newest in store.delta_hints()
    assert holder.refresh(store) and holder.current.version == newest
    assert _tensor_bytes(holder.current.model.state_arrays()) == reference(200)  # type: ignore[attr-defined]


def test_a_chain_builds_one_model_and_a_state_only_load_none(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ListEventSource([])
    fill(source, 0, 300)
    train(store, source, 300, full_every=50)
    newest = store.current_version()
    assert newest is not None and newest in store.delta_hints()
    chain, v = 0, newest
    while v in store.delta_hints():
        v, chain = store.delta_hints()[v], chain + 1
    assert chain >= 3
    built: list[int] = []
    original = Covisitation.from_state.__func__  # type: ignore[attr-defined]

    def counted(cls: type, params: dict[str, Any], state: Any) -> Covisitation:
        built.append(1)
        return original(cls, params, state)  # type: ignore[no-any-return]

    monkeypatch.setattr(Covisitation, "from_state", classmethod(counted))
    snap = store.load(newest)
    assert len(built) == 1  # the newest state only, not one model per delta of the chain
    assert _tensor_bytes(snap.model.state_arrays()) == reference(300)  # type: ignore[attr-defined]
    bare = store.load(newest, build=False)
    assert len(built) == 1
    assert bare.image is not None and _tensor_bytes(bare.image.state) == reference(300)
    assert bare.model.n_events_learned == 0  # a blank model of the class and parameters


def test_a_delta_nearly_as_large_as_the_model_is_published_full(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Trainer, "MAX_DELTA_SHARE", 0.0)
    source = ListEventSource([])
    fill(source, 0, 200)
    trainer = train(store, source, 200, full_every=50)
    # Every publish after the first could have been a delta (how many polls a loaded
    # machine merges into one publish varies): none was.
    assert trainer.snapshots_published >= 2 and trainer.deltas_published == 0
    assert store.delta_hints() == {}


def test_models_list_names_delta_versions(
    store: SnapshotStore, settings_env: dict[str, str]
) -> None:
    source = ListEventSource([])
    fill(source, 0, 100)
    train(store, source, 100, full_every=50)
    deltas = store.delta_hints()
    listed = CliRunner().invoke(main, ["models", "list", "--json"], env=settings_env)
    assert listed.exit_code == 0, listed.output
    rows = {row["version"]: row for row in json.loads(listed.stdout)}
    assert deltas and set(rows) == set(store.versions())
    for version, row in rows.items():
        assert row["delta_of"] == deltas.get(version)
    table = CliRunner().invoke(main, ["models", "list"], env=settings_env).stdout
    newest = max(deltas)
    assert f"delta of {deltas[newest]}" in table
