"""Looking pages up in the catalog: one page's record, every page, and what each means now.

The catalog is what the ``pages`` topic holds when read to its end
(:func:`~streams.catalog.follower.read_catalog`). A page "in the catalog" has a record
there; a page known only from page views, or deleted by a tombstone, has none, and
:func:`find_page` refuses it with :class:`UnknownPage`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from online_model.catalog import Catalog
from online_model.errors import InputError


class UnknownPage(InputError):
    """The catalog topic holds no record of a page (never written, or deleted)."""

    def __init__(self, page_id: str, topic: str, listed: int, deleted: bool) -> None:
        self.page_id = page_id
        self.topic = topic
        self.deleted = deleted
        if deleted:
            why = f"page {page_id!r} was deleted from the catalog (topic {topic})"
        elif listed == 0:
            why = f"page {page_id!r} is not in the catalog: topic {topic} holds no pages"
        else:
            noun = "page" if listed == 1 else "pages"
            why = f"page {page_id!r} is not in the catalog (topic {topic}, {listed} {noun})"
        super().__init__(why)


def find_page(catalog: Catalog, page_id: str, topic: str) -> dict[str, Any]:
    """The latest record of ``page_id``; :class:`UnknownPage` when there is none."""
    record = catalog.record(page_id)
    if record is None:
        raise UnknownPage(page_id, topic, len(catalog), catalog.deleted(page_id))
    return record


def list_pages(catalog: Catalog, hidden_only: bool = False) -> list[dict[str, Any]]:
    """Every page's record, by page id; only those with ``available = false`` if asked."""
    records = catalog.records()
    if hidden_only:
        return [r for r in records if not r.get("available", True)]
    return records


def page_state(record: dict[str, Any], now_ms: int) -> str:
    """``hidden``, ``not published yet``, ``expired`` or ``visible`` at ``now_ms``.

    >>> page_state({"page_id": "p", "available": True, "expires_at": 10}, now_ms=10)
    'expired'
    """
    if not record.get("available", True):
        return "hidden"
    published_at, expires_at = record.get("published_at"), record.get("expires_at")
    if published_at is not None and published_at > now_ms:
        return "not published yet"
    if expires_at is not None and expires_at <= now_ms:
        return "expired"
    return "visible"


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def page_line(record: dict[str, Any], now_ms: int) -> str:
    """One readable line: the page, its state, then the fields its record sets.

    >>> page_line({"page_id": "p1", "available": False, "categories": ["news", "sport"],
    ...            "expires_at": 1893456000000, "title": "A title",
    ...            "attributes": {"author": "ann"}}, now_ms=0)
    "p1: hidden; categories news|sport; expires 2030-01-01T00:00:00Z; title 'A title'; author=ann"
    """
    parts = [f"{record['page_id']}: {page_state(record, now_ms)}"]
    if record.get("categories"):
        parts.append("categories " + "|".join(record["categories"]))
    for name, word in (("published_at", "published"), ("expires_at", "expires")):
        if record.get(name) is not None:
            parts.append(f"{word} {_iso(record[name])}")
    for name in ("title", "url"):
        if record.get(name) is not None:
            parts.append(f"{name} {record[name]!r}")
    attributes = record.get("attributes") or {}
    parts.extend(f"{key}={value}" for key, value in sorted(attributes.items()))
    return "; ".join(parts)
