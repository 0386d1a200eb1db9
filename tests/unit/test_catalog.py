"""The page catalog: which pages may be served, and lists that stay k long when filtered."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from online_model.catalog import Catalog, recommend_eligible
from online_model.errors import ConfigurationError, InputError
from streams.io.codec import PAGE, AvroCodec
from streams.settings import Settings


class Ranked:
    """A model that ranks pages p0..p{n-1} in that order for everyone, and counts how
    many candidates each call asked for."""

    def __init__(self, n_pages: int) -> None:
        self.pages = [f"p{i}" for i in range(n_pages)]
        self.asks: list[int] = []

    def recommend(
        self, user: Hashable, k: int, history: object, exclude: set[Hashable]
    ) -> list[tuple[Hashable, float]]:
        self.asks.append(k)
        left = [p for p in self.pages if p not in exclude]
        return [(p, 1.0 / (1 + i)) for i, p in enumerate(left[:k])]


def popular(n_pages: int) -> Ranked:
    return Ranked(n_pages)


def hidden(page: str) -> dict[str, object]:
    return {"page_id": page, "available": False}


def test_hidden_expired_unpublished_and_deleted_pages_are_not_eligible() -> None:
    catalog = Catalog()
    catalog.apply("shown", {"page_id": "shown", "categories": ["news"]})
    catalog.apply("hidden", hidden("hidden"))
    catalog.apply("expiring", {"page_id": "expiring", "expires_at": 2_000})
    catalog.apply("future", {"page_id": "future", "published_at": 2_000})
    catalog.apply("deleted", {"page_id": "deleted"})
    catalog.apply("deleted", None)
    at_1000 = {p: catalog.eligible(p, 1_000) for p in catalog_ids()}
    assert at_1000 == {
        "shown": True,
        "hidden": False,
        "expiring": True,
        "future": False,
        "deleted": False,
        "never-heard-of": True,
    }
    assert not catalog.eligible("expiring", 2_000)  # expires AT expires_at
    assert catalog.eligible("future", 2_000)


def catalog_ids() -> list[str]:
    return ["shown", "hidden", "expiring", "future", "deleted", "never-heard-of"]


def test_the_latest_record_wins_and_a_record_after_a_tombstone_restores() -> None:
    catalog = Catalog()
    catalog.apply("p", hidden("p"))
    assert not catalog.eligible("p", 0)
    catalog.apply("p", {"page_id": "p", "available": True})
    assert catalog.eligible("p", 0)
    catalog.apply("p", None)
    assert not catalog.eligible("p", 0) and catalog.record("p") is None
    catalog.apply("p", {"page_id": "p", "title": "back"})
    assert catalog.eligible("p", 0) and catalog.record("p") == {"page_id": "p", "title": "back"}


def test_unknown_pages_follow_the_policy() -> None:
    assert Catalog("allow").eligible("x", 0)
    assert not Catalog("deny").eligible("x", 0)
    deny = Catalog("deny")
    deny.apply("listed", {"page_id": "listed"})
    assert deny.eligible("listed", 0)
    with pytest.raises(ConfigurationError, match="allow or deny"):
        Catalog("maybe")
    with pytest.raises(ConfigurationError, match="STREAMREC_CATALOG_UNKNOWN"):
        Settings.from_env({"STREAMREC_CATALOG_UNKNOWN": "sometimes"})
    assert Settings.from_env({"STREAMREC_CATALOG_UNKNOWN": "deny"}).catalog_unknown == "deny"


def test_a_timestamp_that_is_not_epoch_ms_is_refused() -> None:
    with pytest.raises(InputError, match="expires_at"):
        Catalog().apply("p", {"page_id": "p", "expires_at": "tomorrow"})


def test_hiding_90_percent_of_pages_still_yields_k_items() -> None:
    model = popular(1_000)
    catalog = Catalog()
    for i in range(1_000):
        if i % 10:  # keep every tenth page
            catalog.apply(f"p{i}", hidden(f"p{i}"))
    items = recommend_eligible(model, "u", 10, [], set(), catalog, now_ms=0)
    assert [p for p, _ in items] == [f"p{i}" for i in range(0, 100, 10)]


def test_lists_are_short_only_when_the_model_runs_out_of_eligible_pages() -> None:
    model = popular(50)
    catalog = Catalog()
    for i in range(47):
        catalog.apply(f"p{i}", hidden(f"p{i}"))
    items = recommend_eligible(model, "u", 10, [], {"p49"}, catalog, now_ms=0)
    assert [p for p, _ in items] == ["p47", "p48"]  # p49 excluded by the caller


def test_deny_serves_only_listed_pages() -> None:
    model = popular(200)
    catalog = Catalog("deny")
    for page in ("p150", "p3", "p199"):
        catalog.apply(page, {"page_id": page})
    items = recommend_eligible(model, "u", 10, [], set(), catalog, now_ms=0)
    assert [p for p, _ in items] == ["p3", "p150", "p199"]


def test_no_over_fetch_while_the_catalog_filters_nothing() -> None:
    model = popular(100)
    catalog = Catalog()
    catalog.apply("p0", {"page_id": "p0", "categories": ["a"]})  # listed, no restriction
    recommend_eligible(model, "u", 10, [], set(), catalog, now_ms=0)
    recommend_eligible(model, "u", 10, [], set(), None, now_ms=0)
    assert model.asks == [10, 10]
    catalog.apply("p1", hidden("p1"))
    items = recommend_eligible(model, "u", 10, [], set(), catalog, now_ms=0)
    # half the listed pages are hidden: k / 0.5 x 1.5 candidates
    assert model.asks[2:] == [30] and "p1" not in [p for p, _ in items] and len(items) == 10


def test_page_records_round_trip_through_the_codec() -> None:
    codec = AvroCodec.bundled(PAGE)
    page = {
        "page_id": "p1",
        "available": False,
        "categories": ["news", "sport"],
        "published_at": 1_700_000_000_000,
        "expires_at": None,
        "title": "Title",
        "url": None,
        "attributes": {"author": "a"},
    }
    assert codec.decode(codec.encode(page)) == page
    minimal = codec.decode(codec.encode({"page_id": "p2"}))
    assert minimal["available"] is True and minimal["categories"] == []
