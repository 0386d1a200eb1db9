"""Per-request rules (category, exclude): parsing, the filter, and the scoring core."""

from __future__ import annotations

import pytest

from online_model.catalog import Catalog, Rules, recommend_eligible
from streams.catalog.rules import (
    CONTEXT_CATEGORY,
    CONTEXT_EXCLUDE,
    MAX_CATEGORIES,
    MAX_EXCLUDE,
    MAX_VALUE_CHARS,
    parse_rules,
    rules_from_context,
)
from streams.errors import BadRule
from streams.io.codec import PAGE_VIEW, RECOMMENDATION, AvroCodec
from streams.io.dlq import RawMessage
from streams.io.producer import page_view
from streams.scorer.core import ScoringCore
from streams.scorer.model_holder import ModelHolder
from streams.state.history import UserState
from tests.unit.test_catalog import hidden, popular

PV = AvroCodec.bundled(PAGE_VIEW)
REC = AvroCodec.bundled(RECOMMENDATION)


def in_category(catalog: Catalog, category: str, pages: list[str]) -> None:
    for page in pages:
        catalog.apply(page, {"page_id": page, "categories": [category]})


def test_a_category_rule_keeps_k_items_from_a_category_of_one_page_in_ten() -> None:
    model = popular(1_000)
    catalog = Catalog()
    in_category(catalog, "sport", [f"p{i}" for i in range(0, 1_000, 10)])
    in_category(catalog, "news", [f"p{i}" for i in range(1, 1_000, 10)])
    sport = frozenset({"sport"})
    items = recommend_eligible(model, "u", 10, [], set(), catalog, 0, categories=sport)
    assert [p for p, _ in items] == [f"p{i}" for i in range(0, 100, 10)]
    both = frozenset({"sport", "news"})
    items = recommend_eligible(model, "u", 4, [], set(), catalog, 0, categories=both)
    assert [p for p, _ in items] == ["p0", "p1", "p10", "p11"]  # any of the categories


def test_a_category_rule_still_leaves_hidden_pages_out() -> None:
    model = popular(100)
    catalog = Catalog()
    in_category(catalog, "sport", ["p1", "p2", "p3"])
    catalog.apply("p2", {**hidden("p2"), "categories": ["sport"]})
    items = recommend_eligible(
        model, "u", 10, [], set(), catalog, 0, categories=frozenset({"sport"})
    )
    assert [p for p, _ in items] == ["p1", "p3"]  # short: only two eligible sport pages


def test_a_category_no_page_has_matches_nothing_without_ranking_every_page() -> None:
    model = popular(100)
    catalog = Catalog()
    in_category(catalog, "sport", ["p1"])
    assert (
        recommend_eligible(model, "u", 10, [], set(), catalog, 0, categories=frozenset({"x"})) == []
    )
    assert (
        recommend_eligible(model, "u", 10, [], set(), None, 0, categories=frozenset({"sport"}))
        == []
    )
    assert model.asks == []


def test_a_page_leaves_a_category_when_its_record_changes_or_is_deleted() -> None:
    catalog = Catalog()
    in_category(catalog, "sport", ["p1", "p2"])
    catalog.apply("p1", {"page_id": "p1", "categories": ["news"]})
    assert catalog.categories("p1") == {"news"} and catalog.has_category("sport")
    catalog.apply("p2", None)
    assert not catalog.has_category("sport") and catalog.categories("p2") == frozenset()


def test_bad_rule_values_are_refused_with_a_reason() -> None:
    assert parse_rules() == Rules() and not parse_rules()
    with pytest.raises(BadRule, match="category must not be empty"):
        parse_rules([""])
    with pytest.raises(BadRule, match=f"at most {MAX_VALUE_CHARS} characters"):
        parse_rules(exclude=["p" * (MAX_VALUE_CHARS + 1)])
    with pytest.raises(BadRule, match=f"at most {MAX_CATEGORIES} category"):
        parse_rules([f"c{i}" for i in range(MAX_CATEGORIES + 1)])
    with pytest.raises(BadRule, match=f"at most {MAX_EXCLUDE} exclude"):
        parse_rules(exclude=[f"p{i}" for i in range(MAX_EXCLUDE + 1)])
    with pytest.raises(BadRule, match=f"context {CONTEXT_CATEGORY}: category must not be empty"):
        rules_from_context({CONTEXT_CATEGORY: "news|"})
    assert rules_from_context({"other": "x"}) == Rules()
    rules = rules_from_context({CONTEXT_EXCLUDE: "p1|p2", CONTEXT_CATEGORY: "news"})
    assert rules == Rules(frozenset({"news"}), frozenset({"p1", "p2"}))


def view(offset: int, user: str, page: str, context: dict[str, str]) -> RawMessage:
    record = page_view(user, page, 1_000, event_id=f"e{offset}")
    record["context"] = context
    return RawMessage("page-views", 0, offset, user.encode(), PV.encode(record))


def test_the_stream_applies_the_rules_a_view_carries_and_dead_letters_bad_ones() -> None:
    holder = ModelHolder()
    for n, page in enumerate("abcdefgh"):
        for _ in range(10 - n):
            holder.fallback.learn_one("x", page, x={"ts": 1})
    catalog = Catalog()
    in_category(catalog, "sport", ["c", "e", "f", "g"])
    core = ScoringCore(holder, "m", k=3, catalog=catalog)
    views, dead = core.decode(
        [
            view(0, "u1", "a", {}),
            view(1, "u2", "a", {CONTEXT_CATEGORY: "sport", CONTEXT_EXCLUDE: "e"}),
            view(2, "u3", "a", {CONTEXT_EXCLUDE: "b|c"}),
            view(3, "u4", "a", {CONTEXT_CATEGORY: ""}),
        ]
    )
    assert [d.message.offset for d in dead] == [3]
    headers = dict(dead[0].headers())
    assert headers["streamrec.error.reason"] == b"bad_rule"
    assert CONTEXT_CATEGORY.encode() in headers["streamrec.error.message"]
    batch = core.score(views, UserState(histories={}, served={}))
    lists = [[i["page_id"] for i in REC.decode(v)["items"]] for _, v in batch.recommendations]
    assert lists == [["b", "c", "d"], ["c", "f", "g"], ["d", "e", "f"]]


def test_the_first_ask_follows_the_share_of_pages_expected_to_pass() -> None:
    catalog = Catalog()
    for i in range(1_000):
        catalog.apply(f"p{i}", {"page_id": f"p{i}", "available": i % 10 != 0})
    model = popular(1_000)
    assert len(recommend_eligible(model, "u", 10, [], set(), catalog, 0)) == 10
    assert model.asks == [17]  # 10 / 0.9 x 1.5, not 4k
    for i in range(1_000):  # now 90 % hidden
        catalog.apply(f"p{i}", {"page_id": f"p{i}", "available": i % 10 == 0})
    model.asks.clear()
    assert len(recommend_eligible(model, "u", 10, [], set(), catalog, 0)) == 10
    assert model.asks == [150]  # one ask, not 40 then 160
