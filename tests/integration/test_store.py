from __future__ import annotations

import time

import pytest

from online_model.errors import SnapshotError, SnapshotVerificationError
from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.settings import Settings
from streams.state.lease import TrainerLease
from streams.state.snapshot_store import SnapshotStore
from tests.support.fixtures import StoreFactory


def snap(n_events: int, origin: str = "trainer") -> Snapshot:
    model = DecayedPopularity()
    for i in range(n_events):
        model.learn_one(f"u{i}", f"p{i % 3}")
    meta = SnapshotMeta(
        model_name="ignored", events_seen=n_events, origin=origin, offsets={"t": {0: n_events}}
    )
    return Snapshot(meta, model, {"n": n_events})


def test_publish_moves_current_forward_and_loads_back(
    settings: Settings, store: SnapshotStore
) -> None:
    assert store.current_version() is None and store.load_current() is None
    v1 = store.publish(snap(1))
    v2 = store.publish(snap(2))
    assert v2 > v1 and store.current_version() == v2
    loaded = store.load_current()
    assert loaded is not None
    assert loaded.meta.version == v2 and loaded.meta.model_name == settings.model_name
    assert loaded.model.n_events_learned == 2 and loaded.trainer_state == {"n": 2}
    assert [m.version for m in store.list_versions()] == [v2, v1]
    assert store.read_meta(v1).offsets == {"t": {0: 1}}


def test_an_older_publish_does_not_move_current_back(
    settings: Settings, store: SnapshotStore
) -> None:
    v1 = store.publish(snap(1))
    # A slow writer (e.g. a replay) takes its version, then a faster one publishes.
    late = int(store.redis.incr(store.keys.version_seq))
    fast = store.publish(snap(3))
    assert fast > late > v1 and store.current_version() == fast
    store._store_version(snap(2), late, make_current=True)
    assert store.current_version() == fast
    assert store.load(late).meta.version == late  # stored and listed all the same
    assert late in store.versions()


def test_publish_without_make_current_keeps_current(
    settings: Settings, store: SnapshotStore
) -> None:
    v1 = store.publish(snap(1))
    v2 = store.publish(snap(2, origin="replay"), make_current=False)
    assert store.current_version() == v1
    assert store.load(v2).meta.origin == "replay"


def test_pinned_current_is_not_moved_by_publish_until_follow(
    settings: Settings, store: SnapshotStore
) -> None:
    v1 = store.publish(snap(1))
    v2 = store.publish(snap(2, origin="replay"))
    store.promote(v1)
    assert store.current_version() == v1 and store.is_pinned()
    v3 = store.publish(snap(3))
    assert store.current_version() == v1
    assert store.latest().meta.version == v3  # type: ignore[union-attr]
    assert store.latest(origin="replay").meta.version == v2  # type: ignore[union-attr]
    assert store.follow() == v3
    assert store.current_version() == v3 and not store.is_pinned()
    v4 = store.publish(snap(4))
    assert store.current_version() == v4


def test_unverifiable_versions_cannot_be_promoted_or_loaded(
    settings: Settings, store: SnapshotStore
) -> None:
    v1 = store.publish(snap(1))
    v2 = store.publish(snap(2))
    other_key = SnapshotStore(store.redis, settings.model_name, b"not-the-key")
    forged = other_key.publish(snap(99))  # same layout, wrong key
    store.redis.set(store.keys.current, v2)  # undo the forged publish's move
    with pytest.raises(SnapshotVerificationError):
        store.promote(forged)
    assert store.current_version() == v2 and not store.is_pinned()
    with pytest.raises(SnapshotError):
        store.promote(12345)  # does not exist
    # A valid snapshot copied under another version is refused too.
    store.redis.set(store.keys.snapshot(v2 + 50), store.redis.get(store.keys.snapshot(v1)))
    with pytest.raises(SnapshotError, match="holds"):
        store.load(v2 + 50)
    good, bad = store.inspect_versions()
    assert [m.version for m in good] == [v2, v1]
    assert [v for v, _ in bad] == [forged]
    # latest() skips what does not verify.
    assert store.latest().meta.version == v2  # type: ignore[union-attr]
    assert store.rejected >= 3


def test_rollback_skips_bad_versions_and_pins(settings: Settings, store: SnapshotStore) -> None:
    v1 = store.publish(snap(1))
    v2 = store.publish(snap(2))
    v3 = store.publish(snap(3))
    store.redis.set(store.keys.snapshot(v2), b"SRSNAP\x01garbage" + bytes(40))
    assert store.rollback() == v1
    assert store.current_version() == v1 and store.is_pinned()
    with pytest.raises(SnapshotError):
        store.rollback()  # nothing verifiable below v1
    store.publish(snap(4))
    assert store.current_version() == v1
    v5 = store.follow()
    assert v5 is not None and v5 > v3 and store.current_version() == v5


def test_keep_n_prunes_but_never_current_or_newest_trainer(
    settings: Settings, store_factory: StoreFactory
) -> None:
    store = store_factory(keep=3)
    v_trainer = store.publish(snap(1))
    first = store.publish(snap(2, origin="replay"))
    store.promote(v_trainer)  # pin an old version
    later = [store.publish(snap(10 + i, origin="replay")) for i in range(6)]
    kept = store.versions()
    assert len(kept) == 3
    assert v_trainer in kept  # current, and the newest trainer version
    assert kept[:2] == [later[-1], later[-2]]
    assert first not in kept and store.redis.get(store.keys.snapshot(first)) is None
    assert store.current_version() == v_trainer
    assert store.latest(origin="trainer").meta.version == v_trainer  # type: ignore[union-attr]


def test_an_experiment_outcome_is_pruned_with_its_version(store_factory: StoreFactory) -> None:
    store = store_factory(keep=2)
    old, kept = store.publish(snap(1, origin="replay")), store.publish(snap(2, origin="replay"))
    results = store.keys.experiment_results
    store.redis.hset(results, mapping={f"{old}:e1": "{}", f"{kept}:e1": "{}", f"{kept}:e2": "{}"})
    store.publish(snap(3, origin="replay"))  # old goes: keep 2
    assert old not in store.versions()
    assert sorted(store.redis.hkeys(results)) == [f"{kept}:e1".encode(), f"{kept}:e2".encode()]


def test_publish_sends_a_pubsub_hint(settings: Settings, store: SnapshotStore) -> None:
    pubsub = store.redis.pubsub()
    pubsub.subscribe(store.keys.published_channel)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait for the subscribe confirmation
        msg = pubsub.get_message(timeout=0.2)
        if msg and msg["type"] == "subscribe":
            break
    version = store.publish(snap(1, origin="trainer"))
    got = None
    while time.monotonic() < deadline and got is None:
        msg = pubsub.get_message(timeout=0.2)
        if msg and msg["type"] == "message":
            got = int(msg["data"])
    pubsub.close()
    assert got == version


def test_trainer_lease_is_exclusive(settings: Settings) -> None:
    client = settings.redis_client()
    first = TrainerLease(client, settings.model_name, ttl_s=0.5)
    second = TrainerLease(client, settings.model_name, ttl_s=0.5)
    assert first.acquire() and not second.acquire()
    assert first.refresh() and not second.refresh()
    time.sleep(0.7)  # first did not refresh: it lapsed
    assert second.acquire()
    assert not first.refresh()  # lost to second
    second.release()
    assert first.acquire()
    first.release()
    assert first.holder() is None
