"""The item-item batch layer fit in bulk over columns of events, slices of users at a time.

:func:`~online_model.models.itemitem.fit_item_item` fits the batch layer of
:class:`~online_model.models.hybrid.Hybrid` from a list of events in one process. A batch job
(``streamrec retrain --model hybrid``) holds the log as columns of codes
(:class:`~online_model.models.covisit.batch.OrderedEvents`) and cuts it into slices of users;
:func:`fit_in_bulk` runs the per-user steps on the slices, through a ``run`` function
(Spark tasks in :mod:`streams.retrain.job`, a plain loop here), and the per-page ones
on the caller's side:

1. per slice, each user's last ``history_length`` distinct pages (:func:`slice_page_sets`,
   what :func:`~online_model.models.itemitem.recent_page_sets` keeps) and how many users hold
   each page, with the place the page was first seen (:func:`held_pages`);
2. on the caller: the ``max_pages`` pages most users hold (ties: first seen, as
   :func:`~online_model.models.itemitem.select_pages` breaks them);
3. per slice, the slice's part of the Gram matrix ``XᵀX`` over those pages
   (:func:`slice_pair_counts`);
4. on the caller: the parts summed (integer counts, so in any order to the same matrix),
   EASE solved and each page's strongest neighbours kept, as the one-process fit does.

The result equals ``fit_item_item(events)`` exactly: same pages in the same order, same
counts, same weights.

>>> from online_model.models.covisit.batch import OrderedEvents
>>> rows = [("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("b", "y", 4), ("c", "x", 5)]
>>> layer = fit_in_bulk(OrderedEvents.from_rows(rows), {"l2": 0.5}, n_slices=2)
>>> layer.pages, layer.n_events
(['x', 'y'], 5)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, cast

import numpy as np
from scipy import sparse

from online_model.errors import ModelError
from online_model.models.itemitem import (
    HISTORY_LENGTH,
    L2,
    MAX_PAGES,
    N_NEIGHBOURS,
    ItemItem,
    PairCounts,
    ease_weights,
    neighbour_table,
    page_pair_counts,
)

logger = logging.getLogger(__name__)

#: ``run(function, slices)`` -> ``[function(s) for s in slices]``, wherever it runs.
Run = Callable[[Callable[[Any], Any], list[Any]], list[Any]]

#: One slice of users: ``(user, page, index)`` columns grouped by user, each user's views
#: in learning order (``index``: the view's place in the whole log's learning order).
Slice = tuple[np.ndarray, np.ndarray, np.ndarray]


def _run_locally(function: Callable[[Any], Any], slices: list[Any]) -> list[Any]:
    return [function(s) for s in slices]


def fit_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The fit's parameters from a hybrid's (``history_length``, ``max_pages``, ``l2``,
    ``n_neighbours``), defaults for the missing ones."""
    return {
        "history_length": int(params.get("history_length", HISTORY_LENGTH)),
        "max_pages": int(params.get("max_pages", MAX_PAGES)),
        "l2": float(params.get("l2", L2)),
        "n_neighbours": int(params.get("n_neighbours", N_NEIGHBOURS)),
    }


def slice_page_sets(views: Slice, history_length: int) -> tuple[np.ndarray, ...]:
    """Each user's last ``history_length`` distinct pages, oldest first (a page viewed
    again moves to the end), as CSR rows: ``(users, indptr, pages, first_index)``, where
    ``first_index`` is each user's first view's place in the log (users in its order)."""
    if history_length < 1:
        raise ModelError(f"history_length must be at least 1, got {history_length}")
    user, page, index = views
    if not len(user):
        empty = np.empty(0, np.int64)
        return empty, np.zeros(1, np.int64), empty, empty
    user = user.astype(np.int64)
    page = page.astype(np.int64)
    index = index.astype(np.int64)
    n_pages = int(page.max()) + 1
    # The last view of each (user, page): sort by pair, then by place; last of each run.
    key = user * n_pages + page
    order = np.lexsort((index, key))
    key, last = key[order], index[order]
    is_last = np.ones(len(key), dtype=bool)
    is_last[:-1] = key[1:] != key[:-1]
    pair_user, pair_page, pair_last = user[order][is_last], page[order][is_last], last[is_last]
    # Per user, by last view: the newest history_length are kept, oldest first.
    order = np.lexsort((pair_last, pair_user))
    pair_user, pair_page, pair_last = pair_user[order], pair_page[order], pair_last[order]
    users, starts, counts = np.unique(pair_user, return_index=True, return_counts=True)
    position = np.arange(len(pair_user)) - np.repeat(starts, counts)
    keep = position >= np.repeat(counts - history_length, counts)
    kept_counts = np.minimum(counts, history_length)
    indptr = np.zeros(len(users) + 1, np.int64)
    np.cumsum(kept_counts, out=indptr[1:])
    # A user's first view: the smallest place among the user's views.
    by_user = np.lexsort((index, user))
    u_sorted = user[by_user]
    first_of = np.ones(len(u_sorted), dtype=bool)
    first_of[1:] = u_sorted[1:] != u_sorted[:-1]
    first_index = index[by_user][first_of]  # users ascending, as np.unique gives them
    return users, indptr, pair_page[keep], first_index


def held_pages(views: Slice, history_length: int, n_pages: int) -> tuple[np.ndarray, np.ndarray]:
    """Users of the slice holding each page in their set, and where each page was first
    seen (the smallest ``first_index * (history_length + 1) + place in the set``, the order
    in which :func:`~online_model.models.itemitem.select_pages` meets pages; int64 max if never)."""
    _, indptr, pages, first_index = slice_page_sets(views, history_length)
    held = np.bincount(pages, minlength=n_pages).astype(np.int64)
    first_seen = np.full(n_pages, np.iinfo(np.int64).max, dtype=np.int64)
    if len(pages):
        lengths = np.diff(indptr)
        place = np.arange(len(pages)) - np.repeat(indptr[:-1], lengths)
        seen = np.repeat(first_index, lengths) * (history_length + 1) + place
        np.minimum.at(first_seen, pages, seen)
    return held, first_seen


def slice_pair_counts(
    views: Slice, history_length: int, row_of_page: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The slice's part of the Gram matrix over the selected pages (``row_of_page``:
    each page code's row, -1 when not selected), as upper-triangle ``(row, col, count)``."""
    _, indptr, pages, _ = slice_page_sets(views, history_length)
    rows = row_of_page[pages] if len(pages) else pages
    selected = rows >= 0
    # Row bounds after dropping the pages not selected: selected pages before each bound.
    before = np.zeros(len(pages) + 1, np.int64)
    np.cumsum(selected, out=before[1:])
    kept = before[indptr]
    flat = rows[selected]
    n_rows = int(row_of_page.max()) + 1 if len(row_of_page) else 0
    user_rows = (flat[kept[i] : kept[i + 1]] for i in range(len(kept) - 1))
    counts = page_pair_counts(cast("Iterable[Sequence[int]]", user_rows), max(n_rows, 0))
    return counts.row, counts.col, counts.count


def _sum_parts(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int) -> PairCounts:
    if not parts or n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return PairCounts(n, empty, empty.copy(), np.zeros(0))
    row = np.concatenate([p[0] for p in parts])
    col = np.concatenate([p[1] for p in parts])
    count = np.concatenate([p[2] for p in parts])
    summed = sparse.coo_matrix((count, (row, col)), shape=(n, n)).tocsr().tocoo()
    order = np.lexsort((summed.col, summed.row))
    return PairCounts(
        n,
        summed.row[order].astype(np.int64),
        summed.col[order].astype(np.int64),
        summed.data[order].astype(np.float64),
    )


def user_slices(user: np.ndarray, page: np.ndarray, n_slices: int) -> list[Slice]:
    """``(user, page, index)`` columns of a log in learning order, cut into ``n_slices``
    slices of whole users."""
    by_user = np.argsort(user, kind="stable")  # stable: each user's views stay in order
    n_slices = max(1, n_slices)
    slice_of = user[by_user] % n_slices
    out = []
    for s in range(n_slices):
        picked = by_user[slice_of == s]
        out.append((user[picked], page[picked], picked.astype(np.int64)))
    return out


def fit_in_bulk(
    events: Any,
    params: Mapping[str, Any],
    *,
    run: Run = _run_locally,
    n_slices: int = 1,
    position: Any = None,
) -> ItemItem:
    """The batch layer of ``events`` (an :class:`~online_model.models.covisit.batch.OrderedEvents`,
    all of it) with a hybrid's fit ``params``; ``run`` maps a function over the slices."""
    fit = fit_params(params)
    history_length, n_pages = fit["history_length"], len(events.pages)
    slices = user_slices(events.user, events.page, min(n_slices, max(len(events.users), 1)))
    held_parts = run(partial(held_pages, history_length=history_length, n_pages=n_pages), slices)
    held = np.zeros(n_pages, np.int64)
    first_seen = np.full(n_pages, np.iinfo(np.int64).max, dtype=np.int64)
    for part_held, part_seen in held_parts:
        held += part_held
        np.minimum(first_seen, part_seen, out=first_seen)
    candidates = np.flatnonzero(held > 0)
    ranked = candidates[np.lexsort((first_seen[candidates], -held[candidates]))]
    selected = ranked[: fit["max_pages"]]
    row_of_page = np.full(n_pages, -1, dtype=np.int64)
    row_of_page[selected] = np.arange(len(selected))
    parts = run(
        partial(slice_pair_counts, history_length=history_length, row_of_page=row_of_page),
        slices,
    )
    counts = _sum_parts(parts, len(selected))
    indptr, neighbour, weight = neighbour_table(
        ease_weights(counts, fit["l2"]), fit["n_neighbours"]
    )
    pages = [events.pages[p] for p in selected.tolist()]
    logger.info(
        "item-item bulk fit events=%d users=%d pages=%d pairs=%d slices=%d",
        len(events),
        len(events.users),
        len(pages),
        len(counts.count),
        len(slices),
    )
    return ItemItem(
        pages, indptr, neighbour, weight, n_events=len(events), params=fit, position=position
    )
