"""Covisitation's learned popularity weight and snapshot compatibility."""

from __future__ import annotations

import io
import pickle
import random
import sys
from typing import Any

import pytest

import online_model.models.covisit.model as covisit_model
from online_model.models.covisit import Covisitation, frozen
from online_model.persist import pickles


def _trending_stream(n: int = 3_000) -> list[tuple[str, str]]:
    """Readers arrive at random and click one of this hour's few stories."""
    rnd = random.Random(0)
    return [
        (f"u{rnd.randrange(500)}", f"story{t // 100}-{min(rnd.randrange(4), rnd.randrange(4))}")
        for t in range(n)
    ]


def _sequential_stream(n: int = 3_000) -> list[tuple[str, str]]:
    """Everyone walks the same chain a -> b -> c ... from a random start."""
    events = []
    for t in range(n):
        user = f"u{t // 6}"
        events.append((user, f"page{(t * 7919 // 6 + t % 6) % 40}"))
    return events


def _learned_weight(events: list[tuple[str, str]]) -> float:
    model = Covisitation()
    for user, page in events:
        model.learn_one(user, page)
    return model._mixture


def test_popularity_weight_follows_the_stream() -> None:
    start = Covisitation()._mixture
    assert _learned_weight(_trending_stream()) > start  # news-like: popularity explains
    assert _learned_weight(_sequential_stream()) < start  # session-like: transitions do


def test_fixed_weight_when_rate_is_zero() -> None:
    model = Covisitation(backoff=0.2, backoff_rate=0.0)
    for user, page in _trending_stream(500):
        model.learn_one(user, page)
    assert model._mixture == 0.2


def test_snapshot_from_before_the_mixture_still_serves_and_learns() -> None:
    model = Covisitation(backoff=0.01, backoff_rate=0.0, pop_half_life=None)
    for user, page in _sequential_stream(600):
        model.learn_one(user, page)
    state = model.__getstate__()
    for key in ("_mixture", "backoff_rate", "pop_half_life"):
        del state[key]
    old = Covisitation.__new__(Covisitation)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    history = ["page1", "page2"]
    assert old.recommend("x", k=5, history=history) == model.recommend("x", k=5, history=history)
    old.learn_one("u1", "page3")
    model.learn_one("u1", "page3")
    assert old.recommend("x", k=5, history=history) == model.recommend("x", k=5, history=history)


def _pickled_globals(data: bytes) -> set[tuple[str, str]]:
    """The (module, name) of every global a pickle refers to."""
    found: set[tuple[str, str]] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            found.add((module, name))
            return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return found


def test_a_pickle_names_the_model_class_and_none_of_its_helpers() -> None:
    """Pickles name the class where ``MOVED_MODULES`` maps the old ``online_model.covisit``;
    the helpers of the package (frozen view, stored graph, ...) never get into one."""
    assert pickles.MOVED_MODULES["online_model.covisit"] == Covisitation.__module__
    model = Covisitation()
    for user, page in _sequential_stream(600):
        model.learn_one(user, page)
    model.mark_published()
    model.learn_one("u1", "page3")  # tracking changes
    for _ in range(2 * frozen._FREEZE_AFTER):
        model.recommend("x", k=5, history=["page1", "page2"])
    assert model._frozen is not None
    loaded = Covisitation.from_state({}, model.state_arrays())
    assert loaded._stored is not None and loaded._frozen is not None
    for m in (model, loaded):
        names = {g for g in _pickled_globals(pickle.dumps(m, protocol=5)) if "online_model" in g[0]}
        assert names == {
            ("online_model.models.covisit.model", "Covisitation"),
            ("online_model.models.popularity", "DecayedPopularity"),
            ("online_model.models.decay", "ForwardDecay"),
        }


def test_a_pickle_naming_the_old_module_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Covisitation()
    for user, page in _sequential_stream(600):
        model.learn_one(user, page)
    with monkeypatch.context() as old_layout:  # pickle it as earlier releases named it
        old_layout.setattr(Covisitation, "__module__", "online_model.covisit")
        old_layout.setitem(sys.modules, "online_model.covisit", covisit_model)
        data = pickle.dumps(model, protocol=5)
        assert ("online_model.covisit", "Covisitation") in _pickled_globals(data)
    assert "online_model.covisit" not in sys.modules
    loaded = pickles.restricted_loads(data)
    assert type(loaded) is Covisitation
    history = ["page1", "page2"]
    assert loaded.recommend("x", k=5, history=history) == model.recommend("x", k=5, history=history)
