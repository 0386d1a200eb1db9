"""The scorer's model holder follows versions published while it loads one."""

from __future__ import annotations

from typing import Any

from online_model.errors import SnapshotError
from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.scorer.model_holder import ModelHolder


class MovingStore:
    """``current`` moves on by one version each time a load completes, ``publishes``
    times (a trainer publishing while the scorer loads)."""

    def __init__(self, publishes: int, bad: frozenset[int] = frozenset()) -> None:
        self.version, self.publishes, self.bad = 1, publishes, bad
        self.loaded: list[int] = []

    def current_version(self) -> int:
        return self.version

    def load(self, version: int, held: Any = None) -> Snapshot:
        self.loaded.append(version)
        if self.publishes:
            self.publishes -= 1
            self.version += 1
        if version in self.bad:
            raise SnapshotError(f"version {version} does not verify")
        return Snapshot(SnapshotMeta("m", version=version), DecayedPopularity())


def test_a_version_published_during_a_load_is_loaded_by_the_same_refresh() -> None:
    store = MovingStore(publishes=1)
    holder = ModelHolder()
    assert holder.refresh(store)
    assert store.loaded == [1, 2]
    assert holder.current.version == 2


def test_following_is_bounded_and_a_refused_version_ends_it() -> None:
    store = MovingStore(publishes=10)
    holder = ModelHolder()
    assert holder.refresh(store)
    assert len(store.loaded) == ModelHolder.MAX_FOLLOW  # the next poll goes on from there
    store = MovingStore(publishes=1, bad=frozenset({2}))
    holder = ModelHolder()
    assert holder.refresh(store)
    assert (store.loaded, holder.current.version, holder.rejected) == ([1, 2], 1, 1)
    assert not holder.refresh(store)  # refused once, not loaded again
