"""Covisitation's learned popularity weight and snapshot compatibility."""

from __future__ import annotations

import pickle
import random

from online_model.models.covisit import Covisitation


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
