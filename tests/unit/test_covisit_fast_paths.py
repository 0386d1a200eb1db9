"""Covisitation's fast serving paths answer exactly what the straightforward code answered.

``reference_recommend`` is Covisitation's serving code before it was optimised (dicts and
``heapq.nlargest``), kept here verbatim as the oracle. The model now has two paths: dicts
while it learns, and a numpy view once it has served ``_FREEZE_AFTER`` calls without
learning (a scorer's snapshot). Both must give the same items in the same order with the
same float scores, for realistic and adversarial (history, exclude, k).
"""

from __future__ import annotations

import heapq
import pickle
import random
from collections.abc import Collection, Hashable, Sequence
from operator import itemgetter

import pytest

from online_model.data.generate import generate
from online_model.models.covisit import Covisitation, frozen


# -- the oracle: Covisitation's serving code before the fast paths --------------------------
def reference_scores(model: Covisitation, history: Sequence[Hashable]) -> dict[Hashable, float]:
    scores: dict[Hashable, float] = {}
    get = scores.get
    seen: set[Hashable] = set()
    age_weight = 1.0
    total_weight = 0.0
    for prev in reversed(history):
        if prev in seen:
            continue
        seen.add(prev)
        cands = model._candidates_of(prev)
        if cands:
            total_weight += age_weight
        if age_weight == 1.0:
            for item, p in cands:
                scores[item] = get(item, 0.0) + p
        else:
            for item, p in cands:
                scores[item] = get(item, 0.0) + p * age_weight
        age_weight *= model.recency
        if len(seen) >= model.n_recent:
            break
    if not scores:
        return scores
    if model.pop_exponent:
        counts, e = model._popularity._counts, -model.pop_exponent
        scores = {i: s * max(counts[i], 1e-300) ** e for i, s in scores.items()}
    norm = (1.0 - model._mixture) / total_weight
    return {i: s * norm for i, s in scores.items()}


def reference_recommend(
    model: Covisitation,
    user: Hashable,
    k: int,
    history: Sequence[Hashable],
    exclude: Collection[Hashable],
) -> list[tuple[Hashable, float]]:
    if k <= 0:
        return []
    history = list(history)[-50:]
    exclude = set(exclude)
    scores = reference_scores(model, history)
    b = model._mixture
    if b and scores:
        pop = model._popularity
        counts, scale = pop._counts, b / pop._total
        scores = {i: s + scale * counts[i] for i, s in scores.items()}
    n_fill = 0
    for item, p in model._popularity.top():
        if item not in scores and item not in exclude:
            scores[item] = b * p
            n_fill += 1
            if n_fill >= k:
                break
    if n_fill < k and len(scores) < k + len(exclude):
        for item, p in model._popularity._recommend(user, k, (), exclude):
            scores.setdefault(item, b * p)
    candidates = ((i, s) for i, s in scores.items() if i not in exclude)
    return heapq.nlargest(k, candidates, key=itemgetter(1))


# -- worlds -----------------------------------------------------------------------------------
def _rows(n_pages: int = 1_500, n_events: int = 30_000, seed: int = 3) -> list[tuple]:
    return generate(n_users=2_000, n_pages=n_pages, n_events=n_events, seed=seed).rows()


@pytest.fixture(scope="module")
def rows() -> list[tuple]:
    return _rows()


def _trained(rows: list[tuple], **params: object) -> Covisitation:
    model = Covisitation(**params)  # type: ignore[arg-type]
    for user, page, ts, _ in rows:
        model.learn_one(user, page, x={"ts": ts})
    return model


def _queries(rows: list[tuple], model: Covisitation, n: int, seed: int = 0) -> list[tuple]:
    """(user, k, history, exclude): real histories, and adversarial ones."""
    rnd = random.Random(seed)
    by_user: dict[str, list[str]] = {}
    for user, page, _, _ in rows:
        by_user.setdefault(user, []).append(page)
    users = sorted(by_user)
    pages = sorted(model._popularity._counts)
    top = [item for item, _ in model._popularity.top()]
    out = []
    for i in range(n):
        user = rnd.choice(users)
        hist = by_user[user][-rnd.randint(1, 60) :]
        kind = i % 6
        if kind == 1:  # repeats, unknown pages, pages without transitions
            hist = [*hist[:3], "never-seen", hist[-1], rnd.choice(pages), hist[-1]]
        elif kind == 2:  # no history: popularity alone
            hist = []
        elif kind == 3:
            hist = [rnd.choice(pages) for _ in range(rnd.randint(1, 8))]
        exclude: set[str] = set(hist)
        if kind == 4:  # exclude swallows the top list: the rare path
            exclude |= set(top)
        elif kind == 5:
            exclude |= set(rnd.sample(pages, 200))
        k = rnd.choice((1, 2, 5, 10, 10, 10, 30, 100))
        out.append((user, k, hist, exclude))
    return out


def _assert_same(model: Covisitation, queries: list[tuple]) -> None:
    for user, k, hist, exclude in queries:
        expected = reference_recommend(model, user, k, hist, exclude)
        assert model.recommend(user, k, history=hist, exclude=exclude) == expected, (hist, k)


# -- Covisitation ---------------------------------------------------------------------------
def test_frozen_model_answers_as_the_reference(rows: list[tuple]) -> None:
    model = _trained(rows)
    queries = _queries(rows, model, 3_000)
    _assert_same(model, queries)
    assert model._frozen is not None  # most of those went through the numpy view
    for user, k, hist, exclude in queries[:500]:
        assert model._recommend_dicts(user, k, hist, exclude) == reference_recommend(
            model, user, k, hist, exclude
        )


def test_learning_model_answers_as_the_reference(rows: list[tuple]) -> None:
    """The trainer's evaluator: one recommend before each learn_one, never frozen."""
    model = _trained(rows[:20_000])
    queries = _queries(rows, model, 1_500, seed=1)
    for (user, page, ts, _), (_, k, hist, exclude) in zip(rows[20_000:], queries, strict=False):
        assert model.recommend(user, k, history=hist, exclude=exclude) == reference_recommend(
            model, user, k, hist, exclude
        )
        model.learn_one(user, page, x={"ts": ts})
    assert model._frozen is None


def test_a_frozen_view_is_dropped_when_the_model_learns_again(rows: list[tuple]) -> None:
    model = _trained(rows[:10_000])
    queries = _queries(rows, model, 300, seed=2)
    _assert_same(model, queries)
    assert model._frozen is not None
    for user, page, ts, _ in rows[10_000:12_000]:
        model.learn_one(user, page, x={"ts": ts})
    _assert_same(model, queries)  # first calls via dicts, then a fresh view
    assert model._frozen is not None and model._frozen.version == model.n_events_learned


@pytest.mark.parametrize(
    "params",
    [
        {"pop_exponent": 0.5},  # always the dict path
        {"recency": 1.0},  # every recent page weighs 1
        {"recency": 0.0},  # only the newest page weighs anything
        {"n_recent": 1, "n_candidates": 5},
        {"backoff": 0.9, "backoff_rate": 0.0},
        {"unit": "seconds", "half_life": 3_600, "pop_half_life": 600},
    ],
)
def test_configurations_answer_as_the_reference(params: dict) -> None:
    rows = _rows(n_pages=400, n_events=8_000, seed=5)
    model = _trained(rows, **params)
    _assert_same(model, _queries(rows, model, 600, seed=3))


def test_ties_keep_the_reference_order() -> None:
    """Tiny models tie a lot: equal scores must come out in the reference's order."""
    model = Covisitation(half_life=0, pop_half_life=0, decay_position=1.0, backward_weight=1.0)
    pages = [f"p{i}" for i in range(80)]
    rnd = random.Random(4)
    for t in range(1_500):
        model.learn_one(f"u{t % 300}", rnd.choice(pages))
    rnd = random.Random(5)
    queries = []
    for _ in range(400):
        hist = rnd.sample(pages, rnd.randint(0, 8))
        queries.append(("x", rnd.choice((1, 3, 12, 40)), hist, set(hist[-rnd.randint(0, 3) :])))
    _assert_same(model, queries)
    assert model._frozen is not None


def test_serving_caches_stay_out_of_snapshots(rows: list[tuple]) -> None:
    model, plain = _trained(rows[:5_000]), _trained(rows[:5_000])
    queries = _queries(rows, model, 200, seed=6)
    _assert_same(model, queries)
    assert model._frozen is not None
    for user, k, hist, exclude in queries:  # the same caches filled the old way
        reference_recommend(plain, user, k, hist, exclude)
    assert pickle.dumps(model, protocol=5) == pickle.dumps(plain, protocol=5)
    state = model.__getstate__()
    assert not {"_frozen", "_serve_version", "_serve_calls"} & set(state)
    assert state["_candidates"] == {}


def test_a_snapshot_pickled_before_the_fast_paths_loads_and_serves(rows: list[tuple]) -> None:
    """A pickle of the old class has none of the new attributes; it must serve as before."""
    model = _trained(rows[:5_000])
    old_state = {
        k: v
        for k, v in model.__dict__.items()
        if k not in ("_frozen", "_serve_version", "_serve_calls")
    }
    old_state["_candidates"] = {}
    loaded = Covisitation.__new__(Covisitation)
    loaded.__setstate__(pickle.loads(pickle.dumps(old_state, protocol=5)))
    _assert_same(loaded, _queries(rows, model, 300, seed=7))
    assert loaded._frozen is not None


def test_an_untrained_model_serves_popularity_alone_when_frozen() -> None:
    model = Covisitation()
    for _ in range(3 * frozen._FREEZE_AFTER):
        assert model.recommend("u", k=5, history=["a", "b"], exclude={"a"}) == []
    model.learn_one("u", "a")
    for _ in range(3 * frozen._FREEZE_AFTER):
        assert model.recommend("v", k=5, history=["a"]) == reference_recommend(
            model, "v", 5, ["a"], ()
        )


def test_freeze_threshold_is_small_enough_for_a_scorer() -> None:
    assert 1 <= frozen._FREEZE_AFTER <= 1_000
