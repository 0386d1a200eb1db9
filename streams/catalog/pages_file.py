"""Reading a catalog file (CSV or JSONL) into ``Page`` records.

CSV: a header row with ``page_id``; optional columns ``available`` (true/false, 1/0,
yes/no; default true), ``categories`` (separated by ``|``), ``published_at`` and
``expires_at`` (epoch milliseconds or ISO-8601, UTC when no zone is given), ``title``,
``url``; every other column becomes an attribute. Empty cells are absent values.
JSONL: one object per line with the same names; ``categories`` may be a list and
``attributes`` an object of strings. A bad row stops the load, naming its line: a
catalog half loaded would hide or show pages nobody meant to.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

from online_model.data.events_file import file_rows
from online_model.errors import ConfigurationError, InputError
from streams.time_range import parse_time

FIELDS = ("page_id", "available", "categories", "published_at", "expires_at", "title", "url")
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n"}


def _available(value: Any) -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"available must be true or false, got {value!r}")


def _time(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be epoch milliseconds or ISO-8601, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return parse_time(str(value))
    except ConfigurationError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def _categories(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return [c.strip() for c in value if c.strip()]
    if isinstance(value, str):
        return [c.strip() for c in value.split("|") if c.strip()]
    raise ValueError(f"categories must be a list of strings or 'a|b', got {value!r}")


def _optional_text(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def page_record(row: dict[str, Any]) -> dict[str, Any]:
    """One row as a ``Page`` record (``ValueError`` naming the bad field).

    >>> page_record({"page_id": "p1", "available": "no", "categories": "news|sport", "x": "1"})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'page_id': 'p1', 'available': False, 'categories': ['news', 'sport'],
     'published_at': None, 'expires_at': None, 'title': None, 'url': None,
     'attributes': {'x': '1'}}
    """
    page_id = row.get("page_id")
    if not isinstance(page_id, str) or not page_id.strip():
        raise ValueError("page_id must be a non-empty string")
    attributes = row.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise ValueError("attributes must be an object of strings")
    extra = {k: v for k, v in row.items() if k not in FIELDS and k != "attributes"}
    for name, value in extra.items():
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        if value != "":
            attributes = {**attributes, name: value}
    return {
        "page_id": page_id.strip(),
        "available": _available(row.get("available")),
        "categories": _categories(row.get("categories")),
        "published_at": _time("published_at", row.get("published_at")),
        "expires_at": _time("expires_at", row.get("expires_at")),
        "title": _optional_text("title", row.get("title")),
        "url": _optional_text("url", row.get("url")),
        "attributes": attributes,
    }


def read_pages(path: str | os.PathLike[str], fmt: str | None = None) -> list[dict[str, Any]]:
    """Every page of a catalog file, in file order (a later row of a page wins)."""
    pages: list[dict[str, Any]] = []
    try:
        for line, row, problem in file_rows(path, ("page_id",), fmt):
            if problem is not None:
                raise InputError(f"{path} line {line}: {problem}")
            try:
                pages.append(page_record(row or {}))
            except ValueError as exc:
                raise InputError(f"{path} line {line}: {exc}") from exc
    except (OSError, EOFError, zlib.error) as exc:  # also a truncated or corrupt .gz
        raise InputError(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc}") from exc
    if not pages:
        raise InputError(f"{path} holds no pages")
    return pages
