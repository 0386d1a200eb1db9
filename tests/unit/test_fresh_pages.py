"""New-page cold start: fresh candidates from catalog metadata, blended with a bounded share."""

from __future__ import annotations

from online_model.fresh import FreshBlend, FreshPages, blend_fresh
from online_model.popularity import DecayedPopularity

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
