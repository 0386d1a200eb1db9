"""New-page cold start: fresh candidates from catalog metadata, blended with a bounded share."""

from __future__ import annotations

import time

from online_model.catalog import Catalog, Rules
from online_model.catalog.fresh import FreshBlend, FreshPages, blend_fresh
from online_model.models.popularity import DecayedPopularity
from streams.scorer.core import ScoringCore
from streams.scorer.model_holder import ModelHolder
from streams.state.history import UserState
from tests.unit.test_scoring import view_msg

PAGES = {
    "old1": {"categories": ["news"], "published_at": 0},
    "old2": {"categories": ["news"], "published_at": 0},
    "old3": {"categories": ["sport"], "published_at": 0},
    "new-news": {"categories": ["news"], "published_at": 5_000},
    "newer-news": {"categories": ["news"], "published_at": 6_000},
    "new-sport": {"categories": ["sport"], "published_at": 6_500},
}


def blended(slots: int = 1) -> FreshBlend:
    model = FreshBlend(DecayedPopularity(), PAGES, slots=slots, window_ms=10_000, max_views=1)
    for n, page in enumerate(["old3", "old2", "old2", "old1", "old1", "old1"]):
        model.learn_one(f"u{n}", page, x={"ts": 7_000 + n})
    return model


def test_fresh_pages_of_the_users_categories_take_at_most_the_slots_at_the_end() -> None:
    model = blended(slots=1)
    items = model.recommend("reader", 3, history=["old2"], exclude={"old2"})
    assert [p for p, _ in items] == ["old1", "old3", "newer-news"]  # news: the newest
    scores = [s for _, s in items]
    assert scores == sorted(scores, reverse=True)
    two = blended(slots=2).recommend("reader", 3, history=["old3", "old2"], exclude=set())
    assert [p for p, _ in two][1:] == ["new-sport", "newer-news"]  # both categories, newest first


def test_no_fresh_page_without_history_categories_or_slots() -> None:
    assert [p for p, _ in blended().recommend("nobody", 3)] == ["old1", "old2", "old3"]
    off = blended(slots=0).recommend("reader", 3, history=["old2"])
    assert "newer-news" not in [p for p, _ in off]


def test_a_page_stops_being_fresh_once_viewed_enough_or_outside_the_window() -> None:
    fresh = FreshPages(window_ms=1_000, max_views=1)
    fresh.add("a", ["c"], published_at=1_000)
    fresh.add("b", ["c"], published_at=1_500)
    assert fresh.candidates(["c"], now_ms=1_600, n=5, exclude=set()) == ["b", "a"]
    assert fresh.candidates(["c"], now_ms=1_600, n=5, exclude={"b"}) == ["a"]
    assert fresh.candidates(["c"], now_ms=1_200, n=5, exclude=set()) == ["a"]  # b not out
    assert fresh.candidates(["c"], now_ms=2_200, n=5, exclude=set()) == ["b"]  # a too old
    fresh.observe("b")
    fresh.observe("b")
    assert fresh.candidates(["c"], now_ms=2_200, n=5, exclude=set()) == []


def test_blending_never_repeats_a_page_nor_grows_the_list() -> None:
    items = [("a", 3.0), ("b", 2.0)]
    assert blend_fresh(items, ["a", "n"], k=2, slots=2) == [("a", 3.0), ("n", 3.0)]
    assert blend_fresh(items, [], k=2, slots=1) == items
    assert blend_fresh([], ["n"], k=2, slots=1) == [("n", 0.0)]


def scoring_core(slots: int, now_ms: int) -> tuple[ScoringCore, Catalog]:
    holder = ModelHolder()
    for n, page in enumerate(["s1", "n2", "n2", "n1", "n1", "n1"]):
        holder.fallback.learn_one(f"u{n}", page, x={"ts": 1})
    catalog = Catalog(fresh=FreshPages(window_ms=60_000, max_views=1))
    for page, category, published in (
        ("n1", "news", 0),
        ("n2", "news", 0),
        ("s1", "sport", 0),
        ("fresh-news", "news", now_ms - 1_000),
        ("fresh-sport", "sport", now_ms - 500),
        ("stale-news", "news", now_ms - 120_000),
    ):
        catalog.apply(page, {"page_id": page, "categories": [category], "published_at": published})
    return ScoringCore(holder, "m", k=3, catalog=catalog, fresh_slots=slots), catalog


def test_the_scorer_gives_new_pages_of_the_users_categories_one_place() -> None:
    now = 10_000_000
    core, catalog = scoring_core(slots=1, now_ms=now)
    served = core.holder.current
    items = core.recommend(served, "reader", ["n2"], now_ms=now)
    assert [p for p, _ in items] == ["n1", "s1", "fresh-news"]  # news reader: news, newest
    off, _ = scoring_core(slots=0, now_ms=now)
    assert "fresh-news" not in [p for p, _ in off.recommend(served, "reader", ["n2"], now_ms=now)]
    hidden = core.recommend(
        served, "reader", ["n2"], now_ms=now, rules=Rules(exclude=frozenset({"fresh-news"}))
    )
    assert [p for p, _ in hidden][-1] != "fresh-news"
    sport_only = core.recommend(
        served, "reader", ["n2", "s1"], now_ms=now, rules=Rules(categories=frozenset({"news"}))
    )
    assert "fresh-sport" not in [p for p, _ in sport_only]  # outside the request's rule
    catalog.apply(
        "fresh-news",
        {
            "page_id": "fresh-news",
            "available": False,
            "categories": ["news"],
            "published_at": now - 1_000,
        },
    )
    assert "fresh-news" not in [p for p, _ in core.recommend(served, "r", ["n2"], now_ms=now)]


def test_views_on_the_stream_end_a_pages_freshness() -> None:
    now = int(time.time() * 1000)
    core, catalog = scoring_core(slots=1, now_ms=now)
    assert catalog.fresh is not None
    assert catalog.fresh.candidates(["news"], now, 5, set()) == ["fresh-news"]
    views, _ = core.decode([view_msg(i, f"v{i}", "fresh-news") for i in range(2)])
    core.score(views, UserState(histories={}, served={}))
    assert catalog.fresh.candidates(["news"], now, 5, set()) == []  # viewed twice > 1


def test_a_new_record_of_a_page_replaces_its_categories_and_time() -> None:
    fresh = FreshPages(window_ms=1_000, max_views=5)
    fresh.add("a", ["news"], published_at=1_000)
    fresh.add("a", ["sport"], published_at=1_200)
    assert fresh.candidates(["news"], 1_500, 5, set()) == []
    assert fresh.candidates(["sport"], 1_500, 5, set()) == ["a"]
    fresh.remove("a")
    assert fresh.candidates(["sport"], 1_500, 5, set()) == []
