"""Delta snapshots of the models that track their changes (co-visitation, popularity):
a chain of deltas applied to a full snapshot gives, byte for byte, the state of a full
snapshot taken at the same point; a delta costs what changed, not the model; and a delta
applies only where it belongs."""

from __future__ import annotations

import dataclasses
import pickle
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from online_model.errors import SnapshotFormatError, SnapshotVerificationError
from online_model.models.covisit import Covisitation
from online_model.models.popularity import DecayedPopularity
from online_model.persist.model_file import _tensor_bytes
from online_model.persist.snapshot import Snapshot, SnapshotMeta, dump_snapshot, load_snapshot
from online_model.persist.snapshot_delta import (
    ChainPosition,
    apply_delta,
    dump_delta,
    read_delta,
)
from online_model.state import ModelState

KEY = b"k" * 32

MODELS: dict[str, Callable[[], Any]] = {
    # Small bounds so that a short test prunes rows and evicts users.
    "covisit-small": lambda: Covisitation(max_users=30, max_neighbours=3),
    "covisit": Covisitation,
    "popularity": lambda: DecayedPopularity(top_m=5),
}


def learn(model: Any, rng: random.Random, n: int, n_users: int, n_pages: int) -> None:
    for _ in range(n):
        model.learn_one(f"u{rng.randrange(n_users)}", f"p{rng.randrange(n_pages)}")


def assert_same_state(a: ModelState, b: ModelState) -> None:
    assert a.values == b.values
    assert a.strings == b.strings
    assert sorted(a.arrays) == sorted(b.arrays)
    for name in a.arrays:
        assert a.arrays[name].dtype == b.arrays[name].dtype, name
        assert np.array_equal(a.arrays[name], b.arrays[name]), name
    assert _tensor_bytes(a) == _tensor_bytes(b)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_chain_of_deltas_rebuilds_the_full_state_exactly(name: str) -> None:
    rng = random.Random(11)
    model = MODELS[name]()
    learn(model, rng, 300, 50, 40)
    base = model.state_arrays()
    model.mark_published()
    for step in range(25):
        # Some intervals learn nothing, others bring new users and new pages.
        learn(model, rng, rng.choice([0, 1, 7, 60]), 80 + step, 45 + 3 * step)
        changes = model.state_delta()
        assert changes is not None
        after = type(model).apply_state_delta(base, changes)
        assert_same_state(after, model.state_arrays())
        model.mark_published()
        base = after
    served = type(model).from_state(model._get_params(), base)
    for history in (["p1"], ["p3", "p7", "p1"], []):
        assert served.recommend("x", 10, history, exclude=set(history)) == model.recommend(
            "x", 10, history, exclude=set(history)
        )


@pytest.mark.parametrize("name", list(MODELS))
def test_a_delta_s_size_is_told_without_building_it(name: str) -> None:
    """The trainer decides full-or-delta from ``delta_nbytes``: it must follow the size of
    the delta's arrays (never below it by much, at most buffers' worth above)."""
    rng = random.Random(4)
    model = MODELS[name]()
    assert model.delta_nbytes() is None  # not tracking yet
    learn(model, rng, 2_000, 300, 200)
    model.mark_published()
    for n in (0, 5, 80, 1_500):
        learn(model, rng, n, 400, 260)
        actual = sum(a.nbytes for a in model.state_delta().arrays.values())
        assert 0.9 * actual <= model.delta_nbytes() <= 1.5 * actual + 64, (n, actual)


def test_no_delta_before_tracking_starts_or_after_a_decay_rescale() -> None:
    model = Covisitation(pop_half_life=1)  # popularity rescales every ~256 events
    model.learn_one("u", "a")
    assert model.state_delta() is None
    model.mark_published()
    model.learn_one("u", "b")
    assert model.state_delta() is not None
    for i in range(300):
        model.learn_one("u", f"p{i % 7}")
    assert model.state_delta() is None  # every count changed: only a full one will do
    model.mark_published()
    model.learn_one("u", "c")
    assert model.state_delta() is not None


def test_a_delta_costs_what_changed_not_the_model() -> None:
    rng = random.Random(5)
    model = Covisitation()
    learn(model, rng, 60_000, 5_000, 5_000)
    full = dump_snapshot(Snapshot(SnapshotMeta("m", version=1), model), KEY)
    model.mark_published()
    learn(model, rng, 20, 5_000, 5_000)
    link = ChainPosition.after(read_meta_of(full), None).next_link()
    delta = dump_delta(SnapshotMeta("m", version=2), model, model.state_delta(), link, {}, KEY)
    # 20 events touch at most 20 users and ~120 rows of 50 neighbours.
    assert len(delta) < len(full) / 20, (len(delta), len(full))


def read_meta_of(data: bytes) -> SnapshotMeta:
    return load_snapshot(data, KEY).meta


def chain(
    n: int, model_name: str = "m", seed: int = 3
) -> tuple[Snapshot, list[bytes], Covisitation]:
    """A full snapshot (version 1) and ``n`` deltas (versions 2..n+1) of one model."""
    rng = random.Random(seed)
    model = Covisitation()
    learn(model, rng, 200, 20, 30)
    full = load_snapshot(
        dump_snapshot(Snapshot(SnapshotMeta(model_name, version=1), model), KEY), KEY
    )
    model.mark_published()
    position = ChainPosition.after(full.meta, None)
    deltas = []
    for version in range(2, n + 2):
        learn(model, rng, 15, 25, 35)
        link = position.next_link()
        data = dump_delta(
            SnapshotMeta(model_name, version=version), model, model.state_delta(), link, {}, KEY
        )
        deltas.append(data)
        position = ChainPosition.after(read_delta(data, KEY).meta, link)
        model.mark_published()
    return full, deltas, model


def test_deltas_apply_in_order_without_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    full, deltas, model = chain(3)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    held = full
    for data in deltas:
        held = apply_delta(held, read_delta(data, KEY))
    assert held.meta.version == 4 and held.link.sequence == 3
    assert_same_state(held.image.state, model.state_arrays())  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "case", ["out_of_order", "applied_twice", "other_base", "other_model", "other_params"]
)
def test_a_delta_applies_only_to_the_version_it_names(case: str) -> None:
    full, deltas, _ = chain(2)
    held, data = full, deltas[0]
    if case == "out_of_order":
        data = deltas[1]
    elif case == "applied_twice":
        held = apply_delta(full, read_delta(deltas[0], KEY))
    elif case == "other_base":
        held, _, _ = chain(1, seed=4)  # another model's version 1
    elif case == "other_model":
        _, foreign, _ = chain(1, model_name="other")
        data = foreign[0]
    elif case == "other_params":
        image = dataclasses.replace(full.image, params={**full.image.params, "window": 3})  # type: ignore[arg-type]
        held = dataclasses.replace(full, image=image)
    with pytest.raises(SnapshotFormatError):
        apply_delta(held, read_delta(data, KEY))


def test_a_tampered_or_truncated_delta_is_refused_before_parsing() -> None:
    _, deltas, _ = chain(1)
    data = deltas[0]
    with pytest.raises(SnapshotVerificationError):
        read_delta(data, b"x" * 32)
    with pytest.raises(SnapshotFormatError, match="truncated"):
        read_delta(data[:-7], KEY)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    with pytest.raises(SnapshotVerificationError):
        read_delta(bytes(flipped), KEY)
    with pytest.raises(SnapshotFormatError, match="delta"):
        load_snapshot(data, KEY)  # a delta is not a model on its own
