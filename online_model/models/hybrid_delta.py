"""Delta snapshots of :class:`~online_model.models.hybrid.Hybrid`: the users' recent pages.

A hybrid's delta (docs/model-format.md, "Delta snapshots") is its online layer's delta
(a co-visitation delta, under ``online.``), its learned weights, the recent pages of the
users active since the last publish, and a reference to the batch layer it was learned
with (``batch_ref``: the layer's event count and offsets). The batch layer itself is
never in a delta: it is in the full snapshot the chain starts from, and a new batch layer
ends the chain (the next publish is a full snapshot that carries it).

This module handles the users' recent pages: rows of those active since the last
publish (the tail of the LRU order) and, applied to a full state, the full rows in the
order and with the page table :meth:`Hybrid.state_arrays` gives.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

import numpy as np

from online_model.errors import ModelError
from online_model.state import (
    ModelState,
    check_indptr,
    id_table,
    indptr_of,
    rows_of,
    take_rows,
)


def recent_rows(users: list[str], lists: Sequence[Sequence[Hashable]]) -> ModelState:
    """``users``' recent pages as CSR rows (``recent.indptr``, ``recent.page``) of a page
    table in first-seen order (``recent.pages``), with ``recent.users``."""
    table: dict[Hashable, int] = {}
    for pages in lists:
        for page in pages:
            table.setdefault(page, len(table))
    return ModelState(
        arrays={
            "recent.indptr": indptr_of([len(p) for p in lists]),
            "recent.page": np.fromiter((table[p] for pages in lists for p in pages), np.int32),
        },
        strings={"recent.users": users, "recent.pages": id_table(table, "page")},
    )


def recent_lists(state: ModelState, what: str) -> OrderedDict[str, list[str]]:
    """Inverse of :func:`recent_rows`: each key's list, in the stored order (``what``
    names the rows in errors)."""
    keys, pages = state.table("recent.users"), state.table("recent.pages")
    flat = state.array("recent.page", np.int32)
    bounds = check_indptr(state.array("recent.indptr", np.int64), len(keys), len(flat), what)
    rows = rows_of(flat, len(pages), f"{what} pages")
    return OrderedDict(
        (key, [pages[r] for r in rows[bounds[i] : bounds[i + 1]]]) for i, key in enumerate(keys)
    )


def _rows(state: ModelState, what: str) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    users, pages = state.table("recent.users"), state.table("recent.pages")
    indptr = state.array("recent.indptr", np.int64)
    page = state.array("recent.page", np.int32)
    check_indptr(indptr, len(users), len(page), f"{what} recent pages")
    rows_of(page, len(pages), f"{what} recent pages")
    return users, pages, indptr, page


def apply_recent(base: ModelState, delta: ModelState, n_users: int) -> ModelState:
    """The recent rows after ``delta``: the users untouched since the base in their order,
    less the evicted ones (the least recently active, first), then the delta's users;
    the page table rebuilt in first-seen order over those rows (numpy gathers)."""
    users, pages, indptr, page = _rows(base, "hybrid")
    active, new_pages, new_indptr, new_page = _rows(delta, "hybrid delta")
    active_set = set(active)
    kept = [i for i, user in enumerate(users) if user not in active_set]
    evicted = len(kept) + len(active) - n_users
    if len(active_set) != len(active) or not 0 <= evicted <= len(kept):
        raise ModelError(f"hybrid delta: recent users do not add up to {n_users}")
    kept = kept[evicted:]
    index = {p: i for i, p in enumerate(pages)}
    union = list(pages)
    codes = np.empty(len(new_pages), np.int64)
    for j, p in enumerate(new_pages):
        code = index.get(p)
        if code is None:
            code = len(union)
            union.append(p)
        codes[j] = code
    kept_indptr, (kept_page,) = take_rows(indptr, [page], np.asarray(kept, dtype=np.int64))
    flat = np.concatenate([kept_page.astype(np.int64), codes[new_page]])
    seen, first = np.unique(flat, return_index=True)
    order = seen[np.argsort(first, kind="stable")]
    renumber = np.empty(len(union), np.int64)
    renumber[order] = np.arange(len(order))
    return ModelState(
        arrays={
            "recent.indptr": np.concatenate([kept_indptr, new_indptr[1:] + kept_indptr[-1]]),
            "recent.page": renumber[flat].astype(np.int32),
        },
        strings={
            "recent.users": [users[i] for i in kept] + list(active),
            "recent.pages": [union[c] for c in order.tolist()],
        },
    )
