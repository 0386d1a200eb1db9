"""The recommender contract as code: what the scorer, the trainer and replay rely on.

Like River's ``river.checks``, :func:`yield_checks` yields named check functions, each
taking a *fresh* (unfitted) model; :func:`check_recommender` runs them all. The test
suite runs them on every built-in model (as ``model:check_name``); the author of a
plug-in model (``STREAMREC_MODEL=package.module:Class``) can run the same checks::

    from online_model.checks import check_recommender
    check_recommender(MyModel())

A model opts out of a check by listing its name in ``_unit_test_skips()``.

>>> from online_model.models.popularity import DecayedPopularity
>>> check_recommender(DecayedPopularity())
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from online_model.base import Recommender
from online_model.data.generate import generate
from online_model.models.forgetting import can_forget, forget_pages
from online_model.persist.snapshot import Snapshot, SnapshotMeta, dump_snapshot, load_snapshot
from online_model.state import exports_state

Check = Callable[[Recommender], None]
Event = tuple[str, str, int]

_KEY = b"contract-check-key-0123456789abcdef"


@functools.cache
def _events() -> tuple[Event, ...]:
    rows = generate(n_users=60, n_pages=80, n_events=1_500, seed=7).rows()
    return tuple((str(user), str(page), int(ts)) for user, page, ts, _ in rows)


def _fit(model: Recommender, events: Sequence[Event]) -> Recommender:
    for user, page, ts in events:
        model.learn_one(user, page, x={"ts": ts})
    return model


def _probes(model: Recommender) -> list[list[tuple[Any, float]]]:
    """Top-10 lists for the last 40 events' users, from their recent pages."""
    events = _events()
    out = []
    for user, page, _ in events[-40:]:
        history = [p for u, p, _ in events[-200:] if u == user][-5:]
        out.append(model.recommend(user, k=10, history=history, exclude={page}))
    return out


def check_counts_what_it_learns(model: Recommender) -> None:
    events = _events()
    _fit(model, events)
    assert model.n_events_learned == len(events), "n_events_learned must count every event"
    n_pages = len({page for _, page, _ in events})
    assert 0 < model.n_items <= n_pages, f"n_items {model.n_items} not in 1..{n_pages}"


def check_recommend_contract(model: Recommender) -> None:
    """At most k distinct items, none excluded, scores sorted descending."""
    events = _events()
    _fit(model, events)
    history = [events[-3][1], events[-2][1], events[-1][1]]
    exclude = set(history) | {events[0][1]}
    for k in (1, 5, 10, 200):
        recs = model.recommend("u0", k=k, history=history, exclude=exclude)
        items = [item for item, _ in recs]
        scores = [score for _, score in recs]
        assert 0 < len(recs) <= k, f"k={k}: {len(recs)} items"
        assert len(set(items)) == len(items), f"k={k}: repeated items {items}"
        assert not exclude & set(items), f"k={k}: excluded items returned"
        assert scores == sorted(scores, reverse=True), f"k={k}: scores not descending"
    everything = model.recommend("u0", k=10_000)
    assert len(everything) == model.n_items, "nothing excluded: every known item is ranked"
    assert model.recommend("u0", k=0, history=history) == []


def check_serves_unknown_users_from_history(model: Recommender) -> None:
    events = _events()
    _fit(model, events)
    history = [events[-3][1], events[-2][1], events[-1][1]]
    assert len(model.recommend("never-seen", k=10, history=history)) == 10


def check_river_api(model: Recommender) -> None:
    _fit(model, _events())
    items = [item for item, _ in model.recommend("u0", k=5)]
    assert isinstance(model.predict_one("u0", items[0]), float)
    ranked = model.rank("u0", items)
    assert len(ranked) == len(items) and set(ranked) == set(items)


def check_clone_forgets(model: Recommender) -> None:
    _fit(model, _events())
    fresh = model.clone()
    assert type(fresh) is type(model)
    assert fresh._get_params() == model._get_params()
    assert fresh.n_events_learned == 0 and fresh.n_items == 0


def check_snapshot_round_trip(model: Recommender) -> None:
    """A snapshot serves the same lists, and the restored model learns identically.

    A model with a pickle-free form (``state_arrays``/``from_state``) must round-trip
    without pickle; one without is stored as a pickle (``STREAMREC_ALLOW_PICKLE``)."""
    events = _events()
    _fit(model, events[:-200])
    pickled = not exports_state(model)
    data = dump_snapshot(Snapshot(SnapshotMeta("contract"), model), _KEY, allow_pickle=pickled)
    restored = load_snapshot(data, _KEY, allow_pickle=pickled).model
    assert _probes(restored) == _probes(model), "restored model serves other lists"
    assert restored.n_events_learned == model.n_events_learned
    for m in (model, restored):
        _fit(m, events[-200:])
    assert _probes(restored) == _probes(model), "restored model learns differently"


def check_deterministic(model: Recommender) -> None:
    """Two clones fed the same events serve the same lists (seeded randomness only)."""
    a = _fit(model.clone(), _events())
    b = _fit(model.clone(), _events())
    assert _probes(a) == _probes(b)


def check_forgets_pages(model: Recommender) -> None:
    """Forgotten pages are neither recommended nor in the snapshot; learning goes on.

    Only for models that can forget (:mod:`online_model.models.forgetting`)."""
    events = _events()
    _fit(model, events[:-200])
    gone = {item for item, _ in model.recommend("u0", k=3)}
    n_items = model.n_items
    assert forget_pages(model, gone) == len(gone), "forget must count the pages it knew"
    assert model.n_items == n_items - len(gone)
    assert not gone & {item for item, _ in model.recommend("u0", k=10_000)}
    assert all(not gone & {item for item, _ in recs} for recs in _probes(model))
    pickled = not exports_state(model)
    data = dump_snapshot(Snapshot(SnapshotMeta("contract"), model), _KEY, allow_pickle=pickled)
    restored = load_snapshot(data, _KEY, allow_pickle=pickled).model
    assert _probes(restored) == _probes(model), "restored model serves other lists"
    assert forget_pages(model, gone) == 0, "nothing left to forget"
    _fit(model, events[-200:])
    assert model.n_events_learned == len(events)


def check_filters_its_own_candidates(model: Recommender) -> None:
    """``recommend_where`` gives the lists of ``recommend`` filtered after ranking.

    Only for models that have it (:class:`online_model.catalog.FiltersCandidates`)."""
    events = _events()
    _fit(model, events)
    pages = sorted({page for _, page, _ in events})
    for n, (user, page, _) in enumerate(events[-20:]):
        allowed = set(pages[n % 7 :: 7])  # a seventh of the pages
        history = [p for u, p, _ in events[-200:] if u == user][-5:]
        exclude = {page, *history}
        among, keep = (allowed, None) if n % 2 else (None, allowed.__contains__)
        got = model.recommend_where(user, 10, history, exclude, among, keep)  # type: ignore[attr-defined]
        ranked = model.recommend(user, k=10_000, history=history, exclude=exclude)
        want = [(item, score) for item, score in ranked if item in allowed][:10]
        assert [item for item, _ in got] == [item for item, _ in want], "other pages"
        assert all(abs(a[1] - b[1]) <= 1e-12 for a, b in zip(got, want, strict=True))


#: Checks of what only some models can do: (check, does the model do it?).
_OPTIONAL: tuple[tuple[Check, Callable[[Recommender], bool]], ...] = (
    (check_forgets_pages, can_forget),
    (check_filters_its_own_candidates, lambda model: hasattr(model, "recommend_where")),
)

_CHECKS: tuple[Check, ...] = (
    check_counts_what_it_learns,
    check_recommend_contract,
    check_serves_unknown_users_from_history,
    check_river_api,
    check_clone_forgets,
    check_snapshot_round_trip,
    check_deterministic,
)


def yield_checks(model: Recommender) -> Iterator[Check]:
    """The contract checks that apply to ``model`` (each takes a fresh model)."""
    skips_of = getattr(model, "_unit_test_skips", None)
    skips = set(skips_of()) if callable(skips_of) else set()
    for check in _CHECKS:
        if check.__name__ not in skips:
            yield check
    for check, applies in _OPTIONAL:
        if check.__name__ not in skips and applies(model):
            yield check


def check_recommender(model: Recommender) -> None:
    """Run every check on a clone of ``model``; raises AssertionError on the first failure."""
    for check in yield_checks(model):
        check(model.clone())
