"""Looking pages up in a catalog: records, states, and the refusal of an unknown page."""

from __future__ import annotations

import pytest

from online_model.catalog import Catalog
from streams.catalog.lookup import UnknownPage, find_page, list_pages, page_state


def catalog() -> Catalog:
    out = Catalog()
    out.apply("b", {"page_id": "b", "available": False})
    out.apply("a", {"page_id": "a", "categories": ["news"]})
    out.apply("gone", {"page_id": "gone"})
    out.apply("gone", None)
    return out


def test_pages_are_listed_by_id_without_deleted_ones() -> None:
    assert [r["page_id"] for r in list_pages(catalog())] == ["a", "b"]
    assert list_pages(catalog(), hidden_only=True) == [{"page_id": "b", "available": False}]
    assert list_pages(Catalog()) == []


def test_an_unknown_a_deleted_and_a_listed_page() -> None:
    assert find_page(catalog(), "a", "pages")["categories"] == ["news"]
    with pytest.raises(UnknownPage, match=r"'x' is not in the catalog \(topic pages, 2 pages\)"):
        find_page(catalog(), "x", "pages")
    with pytest.raises(UnknownPage, match="'gone' was deleted from the catalog") as deleted:
        find_page(catalog(), "gone", "pages")
    assert deleted.value.deleted
    with pytest.raises(UnknownPage, match="topic pages holds no pages"):
        find_page(Catalog(), "x", "pages")


@pytest.mark.parametrize(
    ("record", "state"),
    [
        ({"page_id": "p"}, "visible"),
        ({"page_id": "p", "available": False, "expires_at": 1}, "hidden"),
        ({"page_id": "p", "published_at": 11}, "not published yet"),
        ({"page_id": "p", "published_at": 10, "expires_at": 11}, "visible"),
        ({"page_id": "p", "expires_at": 10}, "expired"),
    ],
)
def test_the_state_of_a_page_is_the_catalogs_eligibility_rule(
    record: dict[str, object], state: str
) -> None:
    assert page_state(record, now_ms=10) == state
    one = Catalog()
    one.apply("p", record)
    assert one.eligible("p", 10) is (state == "visible")
