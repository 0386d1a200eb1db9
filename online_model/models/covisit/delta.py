"""Delta snapshots of a co-visitation model: what changed since the last publish.

The model tracks changes itself, in the attributes :class:`Tracked` names, as it learns
and forgets: ``mark_published()`` starts with empty sets, ``learn_one`` adds the user
and the rows its links touch (the user's previous pages' and the new page's), and a
rescale of every weight or a page leaving the table sets ``_delta_broken`` (only a full
state will do then). This module turns those sets into a delta
(:func:`build_delta`, sized beforehand by :func:`delta_size`) and applies one to a
full state (:func:`merge_delta`); the layout is docs/model-format.md's.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Protocol

import numpy as np

from online_model.errors import ModelError
from online_model.models.covisit.state import Graph
from online_model.models.popularity import DecayedPopularity
from online_model.state import (
    ModelState,
    check_indptr,
    check_rows,
    id_table,
    indptr_of,
    stack_rows,
    take_rows,
)


class Tracked(Graph, Protocol):
    """A model's state and its changes since the last publish (None: not tracking)."""

    window: int
    _dirty_rows: set[Hashable] | None
    _dirty_users: set[Hashable] | None
    _delta_broken: bool


def delta_size(model: Tracked) -> int | None:
    """The bytes of :func:`build_delta`'s arrays, in O(changed rows) without building
    them (the users' buffers are counted full); None when only a full state will do.

    The trainer asks first: while it catches up, a second's change touches most of the
    graph, and building a delta only to publish a full snapshot instead costs twice.
    """
    dirty_rows, dirty_users = model._dirty_rows, model._dirty_users
    popularity = model._popularity.delta_nbytes()
    if dirty_rows is None or dirty_users is None or popularity is None or model._delta_broken:
        return None
    neighbours = model._neighbours
    nnz = sum(len(row) for row in map(neighbours.get, dirty_rows, itertools.repeat(())))
    # Per row: its number, out weight and pointer; per link: page and weight.
    users = min(len(dirty_users), len(model._histories))  # the evicted are not sent
    return popularity + 24 * len(dirty_rows) + 12 * nnz + (8 + 4 * model.window) * users


def build_delta(model: Tracked) -> ModelState | None:
    """What changed since :meth:`Covisitation.mark_published`, in O(change)
    (docs/model-format.md):

    new ``pages``; the whole rows (``rows``, ``neighbours.*``, ``out``) of pages whose
    successors changed; the buffers of the users active since (``users``,
    ``histories.*``, in recency order: they are the tail of the LRU order, and
    ``n_users`` says how many users are kept in all, so the evicted ones follow);
    popularity's delta and the scalars. None when only a full state will do.
    """
    dirty_rows, dirty_users = model._dirty_rows, model._dirty_users
    pop = model._popularity
    position = pop._position
    if dirty_rows is None or dirty_users is None or position is None or model._delta_broken:
        return None
    popularity = None
    new_pages = pop.new_items()
    new_rows = {page: i for i, page in enumerate(new_pages, len(position))}
    # Rows of pages in the table: one C-level lookup each, new pages patched after.
    lookup = position.get

    def rows_array(pages: list[Hashable]) -> np.ndarray:
        out = np.fromiter(map(lookup, pages, itertools.repeat(-1)), np.int32, len(pages))
        if new_rows:
            for i in np.flatnonzero(out < 0).tolist():
                out[i] = new_rows[pages[i]]
        return out

    try:
        popularity = pop.state_delta(owner_rows=new_rows)
        dirty = list(dirty_rows)
        ordered = rows_array(dirty).astype(np.int64)
        by_row = np.argsort(ordered, kind="stable")
        ordered = ordered[by_row]
        neighbours, out = model._neighbours, model._out
        pages = [dirty[i] for i in by_row.tolist()]
        rows = [neighbours.get(page) for page in pages]
        present = [r for r in rows if r]
        lengths = [len(r) if r else 0 for r in rows]
        nnz = sum(lengths)
        dst = rows_array(list(itertools.chain.from_iterable(present)))
        histories = model._histories
        n_active = sum(1 for user in dirty_users if user in histories)
        users = list(itertools.islice(reversed(histories), n_active))[::-1]
        buffers = [histories[user] for user in users]
        history_pages = rows_array(list(itertools.chain.from_iterable(buffers)))
    except KeyError as exc:  # every learned page is counted: this is a bug
        raise ModelError(f"co-visitation page {exc} is missing from its table") from exc
    if popularity is None:
        return None
    weights = np.fromiter(
        itertools.chain.from_iterable(r.values() for r in present), np.float64, nnz
    )
    out_weight = [out[page] if r else 0.0 for page, r in zip(pages, rows, strict=True)]
    state = ModelState(
        values={
            "n_events_learned": model.n_events_learned,
            "clock": model._clock.state(),
            "mixture": model._mixture,
            "n_pages": len(position) + len(new_pages),
            "n_users": len(histories),
        },
        arrays={
            "rows": ordered,
            "out": np.array(out_weight, dtype=np.float64),
            "neighbours.indptr": indptr_of(lengths),
            "neighbours.page": dst,
            "neighbours.weight": weights,
            "histories.indptr": indptr_of([len(h) for h in buffers]),
            "histories.page": history_pages,
        },
        strings={"pages": id_table(new_pages, "page"), "users": id_table(users, "user")},
    )
    state.nest("popularity", popularity)
    return state


def merge_delta(base: ModelState, delta: ModelState) -> ModelState:
    """:meth:`Covisitation.state_arrays` as it is after ``delta`` (see
    :func:`build_delta`), built with numpy gathers over the base arrays; ``base`` is not
    modified."""
    pages, new_pages = base.table("pages"), delta.table("pages")
    values = dict(delta.values)
    n_pages, n_users = int(values.pop("n_pages")), int(values.pop("n_users"))
    n = len(pages)
    if n + len(new_pages) != n_pages:
        raise ModelError(f"co-visitation delta: {n} + {len(new_pages)} pages is not {n_pages}")
    # Rows of successors: changed rows from the delta, new pages without one empty.
    rows = delta.array("rows", np.int64)
    check_rows(rows, n_pages, "co-visitation delta rows")
    if len(rows) > 1 and bool(np.any(np.diff(rows) <= 0)):
        raise ModelError("co-visitation delta: rows are not in increasing order")
    dst = delta.array("neighbours.page", np.int32)
    weight = delta.array("neighbours.weight", np.float64)
    out = delta.array("out", np.float64)
    indptr = delta.array("neighbours.indptr", np.int64)
    check_indptr(indptr, len(rows), len(dst), "co-visitation delta neighbours")
    if len(weight) != len(dst) or len(out) != len(rows):
        raise ModelError("co-visitation delta: graph arrays differ in length")
    check_rows(dst, n_pages, "co-visitation delta neighbours.page")
    base_indptr = base.array("neighbours.indptr", np.int64)
    stacked, graph = stack_rows(
        base_indptr,
        [base.array("neighbours.page", np.int32), base.array("neighbours.weight", np.float64)],
        indptr,
        [dst, weight],
    )
    source = np.arange(n_pages, dtype=np.int64)
    source[n:] = n + len(rows)  # the empty row
    source[rows] = n + np.arange(len(rows))
    new_indptr, (new_dst, new_weight) = take_rows(stacked, graph, source)
    new_out = np.concatenate([base.array("out", np.float64), np.zeros(len(new_pages))])
    new_out[rows] = out
    # User buffers: the untouched users in their order, less the evicted (the least
    # recently active, i.e. the first ones), then the active users of the delta.
    users, active = base.table("users"), delta.table("users")
    active_set = set(active)
    h_pages = delta.array("histories.page", np.int32)
    h_indptr = delta.array("histories.indptr", np.int64)
    check_indptr(h_indptr, len(active), len(h_pages), "co-visitation delta histories")
    check_rows(h_pages, n_pages, "co-visitation delta histories.page")
    kept = [i for i, user in enumerate(users) if user not in active_set]
    evicted = len(kept) + len(active) - n_users
    if len(active_set) != len(active) or not 0 <= evicted <= len(kept):
        raise ModelError(f"co-visitation delta: users do not add up to {n_users}")
    kept = kept[evicted:]
    stacked, buffers = stack_rows(
        base.array("histories.indptr", np.int64),
        [base.array("histories.page", np.int32)],
        h_indptr,
        [h_pages],
    )
    order = np.array(kept + list(range(len(users), len(users) + len(active))), np.int64)
    new_h_indptr, (new_h_pages,) = take_rows(stacked, buffers, order)
    state = ModelState(
        values=values,
        arrays={
            "out": new_out,
            "neighbours.indptr": new_indptr,
            "neighbours.page": new_dst,
            "neighbours.weight": new_weight,
            "histories.indptr": new_h_indptr,
            "histories.page": new_h_pages,
        },
        strings={"pages": pages + new_pages, "users": [users[i] for i in kept] + active},
    )
    state.values.pop("popularity", None)
    state.nest(
        "popularity",
        DecayedPopularity.apply_state_delta(base.sub("popularity"), delta.sub("popularity")),
    )
    return state
