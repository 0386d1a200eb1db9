"""Bulk-learned co-visitation serves like the model that learned the same events online."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import pytest

from online_model.data.generate import generate
from online_model.models.covisit import Covisitation
from online_model.models.covisit.batch import (
    DecayClock,
    OrderedEvents,
    build_covisitation,
    bulk_statistics,
    events_first_after,
    statistics_in_memory,
)
from online_model.models.decay import ForwardDecay

Events = list[tuple[str, str, int]]


def _views(n: int = 4_000, seed: int = 3) -> Events:
    rows = generate(n_users=120, n_pages=60, n_events=n, seed=seed).rows()
    return [(u, p, t) for u, p, t, _ in rows]


def _online(events: Events, params: dict[str, Any]) -> Covisitation:
    model = Covisitation(**params)
    for user, page, ts in events:
        model.learn_one(user, page, x={"ts": ts})
    return model


def _bulk_then_online(events: Events, params: dict[str, Any], tail: int) -> Covisitation:
    cut = len(events) - tail
    model = build_covisitation(params, statistics_in_memory(events[:cut], params))
    for user, page, ts in events[cut:]:
        model.learn_one(user, page, x={"ts": ts})
    return model


def assert_same_top(a: Covisitation, b: Covisitation, histories: Sequence[Sequence[Hashable]]):
    """Same top-10 for every history: scores equal within float tolerance, and the pages
    equal except where two scores tie (within that tolerance) and may swap places."""
    for history in histories:
        ra = a.recommend("x", k=10, history=list(history), exclude=set(history))
        rb = b.recommend("x", k=10, history=list(history), exclude=set(history))
        assert len(ra) == len(rb)
        for (pa, sa), (pb, sb) in zip(ra, rb, strict=True):
            assert math.isclose(sa, sb, rel_tol=1e-9, abs_tol=1e-15), (history, ra, rb)
            if pa != pb:
                tied = [s for p, s in ra if p == pb]
                assert tied and math.isclose(tied[0], sa, rel_tol=1e-9), (history, ra, rb)


def _histories(events: Events) -> list[list[str]]:
    by_user: dict[str, list[str]] = {}
    for user, page, _ in events:
        by_user.setdefault(user, []).append(page)
    return [pages[-5:] for pages in list(by_user.values())[:60]] + [[], ["nowhere"]]


# Small half-lives make both clocks rescale several times within the log.
FIXED_MIX = {"backoff_rate": 0.0, "half_life": 40, "pop_half_life": 3}
SECONDS = {"backoff_rate": 0.0, "unit": "seconds", "half_life": 86_400.0, "pop_half_life": 3_600.0}


@pytest.mark.parametrize("params", [{"backoff_rate": 0.0}, FIXED_MIX, SECONDS])
def test_bulk_statistics_give_the_online_top_10(params: dict[str, Any]) -> None:
    events = _views()
    online, bulk = _online(events, params), _bulk_then_online(events, params, tail=0)
    assert online.n_events_learned == bulk.n_events_learned == len(events)
    assert_same_top(online, bulk, _histories(events))
    # ...and both keep learning alike (the clocks and users' recent pages carried over).
    more = _views(n=500, seed=4)
    for model in (online, bulk):
        for user, page, ts in more:
            model.learn_one(user, page, x={"ts": ts + 10**9})
    assert_same_top(online, bulk, _histories(more))


def test_learned_popularity_weight_is_learned_over_the_online_tail() -> None:
    """m is sequential: the bulk model is the online one with m held at ``backoff`` until
    the tail, then learned over the tail as online."""
    events = _views(n=6_000)
    params = {"backoff_rate": 0.02}
    cut = len(events) - 2_000
    held = _online(events[:cut], {**params, "backoff_rate": 0.0})
    held.backoff_rate = params["backoff_rate"]
    for user, page, ts in events[cut:]:
        held.learn_one(user, page, x={"ts": ts})
    bulk = _bulk_then_online(events, params, tail=2_000)
    untrained = _bulk_then_online(events, params, tail=0)
    assert untrained._mixture == Covisitation(**params).backoff
    assert abs(bulk._mixture - untrained._mixture) > 1e-2  # the tail is what learns it
    assert math.isclose(bulk._mixture, held._mixture, rel_tol=1e-9)
    assert_same_top(held, bulk, _histories(events))


def test_rows_keep_the_exact_strongest_neighbours_where_online_pruning_loses_mass() -> None:
    """The documented difference: bulk rows are the exact top ``2 * max_neighbours``."""
    events = _views()
    params = {"backoff_rate": 0.0, "max_neighbours": 3}
    stats = statistics_in_memory(events, params)
    full = statistics_in_memory(events, {**params, "max_neighbours": 10_000})
    for src, row in stats.rows.items():
        exact = sorted(full.rows[src], key=lambda kv: -kv[1])[:6]
        assert [w for _, w in row] == pytest.approx([w for _, w in exact])
    online = _online(events, params)
    assert any(
        sorted(online._neighbours[src]) != sorted(dict(row)) for src, row in stats.rows.items()
    )


def test_clock_final_origin_matches_the_online_clock() -> None:
    for half_life in (0.5, 3.0):
        online = ForwardDecay(half_life, "events")
        for _ in range(2_000):
            online.tick()
        clock = DecayClock(half_life, "events")
        assert clock.final_origin(2_000, 0.0, events_first_after(2_000)) == pytest.approx(
            online._origin
        )


@pytest.mark.parametrize(
    "params",
    [
        {"backoff_rate": 0.0},
        FIXED_MIX,
        SECONDS,
        {"window": 3, "max_neighbours": 3, "backward_weight": 0.0, "max_users": 10},
    ],
)
@pytest.mark.parametrize("n_slices", [1, 3])
def test_columns_give_the_reference_statistics(params: dict[str, Any], n_slices: int) -> None:
    """:func:`bulk_statistics` (numpy, pairs counted per user slice) == the event-by-event
    reference: same rows in the same order, same totals, popularity and users' pages."""
    events = _views()
    cut = 3_000
    ref = statistics_in_memory(events[:cut], params)
    got = bulk_statistics(OrderedEvents.from_rows(events), cut, params, n_slices=n_slices)
    assert (got.n_events, got.link_origin, got.pop_origin) == (cut, ref.link_origin, ref.pop_origin)
    assert got.histories == ref.histories[-params.get("max_users", 100_000) :]
    assert [p for p, _ in got.popularity] == [p for p, _ in ref.popularity]
    assert [w for _, w in got.popularity] == pytest.approx([w for _, w in ref.popularity])
    assert got.out == pytest.approx(ref.out, rel=1e-9)
    assert set(got.rows) == set(ref.rows)
    for src, row in ref.rows.items():
        assert [p for p, _ in got.rows[src]] == [p for p, _ in row]
        assert [w for _, w in got.rows[src]] == pytest.approx([w for _, w in row], rel=1e-9)


def test_ordered_events_hand_back_rows_and_earlier_pages() -> None:
    log = OrderedEvents.from_rows([("u1", "b", 1), ("u2", "a", 2), ("u1", "c", 3), ("u1", "a", 4)])
    assert log.rows(2) == [("u1", "c", 3), ("u1", "a", 4)]
    assert log.pages_before(3, {"u1", "nobody"}) == {"u1": ["b", "c"]}
    assert bulk_statistics(log, 0, {}).n_events == 0


def test_buckets_without_links_and_logs_without_pairs() -> None:
    # Five slices and buckets, links out of two pages only: three buckets stay empty.
    views = [(f"u{i}", page, i) for i in range(5) for page in ("a", "b")]
    log = OrderedEvents.from_rows(views)
    stats = bulk_statistics(log, len(log), {}, n_slices=5)
    assert stats.rows == statistics_in_memory(views, {}).rows
    assert set(stats.out) == {"a", "b"}
    # One view per user: pages and users, no links.
    lonely = OrderedEvents.from_rows([(f"u{i}", "a", i) for i in range(3)])
    stats = bulk_statistics(lonely, 3, {}, n_slices=2)
    assert (stats.rows, stats.out, [p for p, _ in stats.popularity]) == ({}, {}, ["a"])
