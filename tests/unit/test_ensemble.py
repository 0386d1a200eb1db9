"""The ensemble: covisit alone until session neighbours earn a weight on hit@10."""

from __future__ import annotations

import random
from collections.abc import Hashable

import numpy as np
import pytest

from online_model.errors import ModelError
from online_model.models.covisit import Covisitation
from online_model.models.ensemble import Ensemble
from online_model.models.judged_weight import GRID, MIN_EVIDENCE
from online_model.registry import make_model


def _events(n: int = 3_000, seed: int = 5) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        user = f"u{rng.randrange(200)}"
        out.append((user, f"p{rng.randrange(60)}"))
    return out


def _probes(model: Ensemble | Covisitation) -> list[list[tuple[Hashable, float]]]:
    histories = [["p1"], ["p2", "p3"], ["p5", "p7", "p9", "p11"], []]
    return [model.recommend("probe", k=10, history=h, exclude=set(h)) for h in histories]


def test_registered_under_its_name() -> None:
    assert isinstance(make_model("ensemble"), Ensemble)


def test_without_a_weight_it_serves_covisit() -> None:
    ensemble, covisit = Ensemble(judge_every=10**9), Covisitation()
    for user, page in _events():
        ensemble.learn_one(user, page)
        covisit.learn_one(user, page)
    assert ensemble.weight == 0.0
    assert _probes(ensemble) == _probes(covisit)


def test_a_weight_is_served_only_on_significant_evidence() -> None:
    model = Ensemble()
    model._judged = MIN_EVIDENCE
    model._hits = np.array([50.0, 50, 51, 52, 50, 40])  # gains too small
    model._disagree = np.array([0.0, 4, 4, 4, 4, 20])
    assert model._choose() == 0.0
    model._hits = np.array([50.0, 55, 60, 70, 65, 40])
    model._disagree = np.array([0.0, 6, 12, 25, 30, 20])
    assert model._choose() == GRID[3]
    model._judged = MIN_EVIDENCE - 1  # not enough judged events yet
    assert model._choose() == 0.0


def test_a_served_weight_mixes_in_session_neighbours() -> None:
    model = Ensemble()
    for user, page in _events():
        model.learn_one(user, page)
    covisit = model.covisit.recommend("probe", k=10, history=["p1", "p2"], exclude={"p1", "p2"})
    model.weight = GRID[-1]
    mixed = model.recommend("probe", k=10, history=["p1", "p2"], exclude={"p1", "p2"})
    assert len(mixed) == 10 and not {"p1", "p2"} & {p for p, _ in mixed}
    assert [s for _, s in mixed] == sorted((s for _, s in mixed), reverse=True)
    assert mixed != covisit


def test_judging_counts_events_and_keeps_the_evidence_in_snapshots() -> None:
    model = Ensemble(judge_every=2)
    for user, page in _events():
        model.learn_one(user, page)
    assert model._judged > 0
    model.weight = GRID[2]
    restored = Ensemble.from_state(model._get_params(), model.state_arrays())
    assert restored.weight == model.weight and restored._judged == model._judged
    assert np.array_equal(restored._hits, model._hits)
    assert _probes(restored) == _probes(model)
    assert restored._sessions == model._sessions and restored._viewers == model._viewers
    for user, page in _events(300, seed=9):
        model.learn_one(user, page)
        restored.learn_one(user, page)
    assert _probes(restored) == _probes(model)


def test_forget_drops_pages_from_both_generators() -> None:
    model = Ensemble()
    for user, page in _events():
        model.learn_one(user, page)
    model.weight = GRID[-1]
    assert model.forget({"p3", "p4", "nowhere"}) == 2
    assert "p3" not in model._viewers
    assert all("p3" not in s and "p4" not in s for s in model._sessions.values())
    for recs in _probes(model):
        assert not {"p3", "p4"} & {p for p, _ in recs}


def test_judge_every_must_be_positive() -> None:
    with pytest.raises(ModelError):
        Ensemble(judge_every=0)
