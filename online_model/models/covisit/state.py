"""A co-visitation model's state as arrays (docs/model-format.md), and back.

:func:`export_state` lays the learned dicts out as :class:`~online_model.state.ModelState`
(what :meth:`Covisitation.state_arrays` returns and a format-2 snapshot stores);
:func:`load_graph` reads such a state back into the popularity part and a
:class:`~online_model.models.covisit.stored.StoredGraph`, which the model serves from
(it sets the scalars itself). :class:`Graph` names what the state is made of.
Deltas of this state are :mod:`online_model.models.covisit.delta`'s.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Hashable
from typing import Protocol

import numpy as np

from online_model.errors import ModelError
from online_model.models.covisit.stored import StoredGraph
from online_model.models.decay import ForwardDecay
from online_model.models.popularity import DecayedPopularity
from online_model.state import ModelState, id_table, indptr_of


class Graph(Protocol):
    """What the state is made of (:class:`Covisitation`'s learned attributes)."""

    n_events_learned: int
    _clock: ForwardDecay
    _mixture: float
    _popularity: DecayedPopularity
    _neighbours: dict[Hashable, dict[Hashable, float]]
    _out: dict[Hashable, float]
    _histories: OrderedDict[Hashable, list[Hashable]]


def export_state(model: Graph) -> ModelState:
    """:meth:`Covisitation.state_arrays`: the transition graph in CSR form over one page
    table, the user buffers and the scalars.

    ``pages`` lists every page in popularity's first-seen order (every page the model
    learned is counted there). Row ``i`` of the graph, ``neighbours.page[a:b]`` with
    ``a, b = neighbours.indptr[i:i+2]``, holds the pages that followed page ``i`` and
    ``neighbours.weight[a:b]`` their decayed weights, in the order they were first
    linked; ``out[i]`` is page ``i``'s total outgoing weight (pruned mass included,
    0 without a row). ``users`` and ``histories.*`` hold the recent pages of each
    user in least-recently-active-first order. See docs/model-format.md.
    """
    pop = model._popularity
    pages = id_table(pop._counts, "page")
    index: dict[Hashable, int] = {page: i for i, page in enumerate(pages)}
    neighbours, out = model._neighbours, model._out
    rows = [neighbours.get(page) for page in pages]
    lengths = [len(row) if row else 0 for row in rows]
    present = [row for row in rows if row]
    nnz = sum(lengths)
    if len(present) != len(neighbours):
        raise ModelError("co-visitation rows of pages outside the page table")
    try:
        # Keys then values of each row, in the row's own order (ties depend on it).
        dst = np.fromiter(
            map(index.__getitem__, itertools.chain.from_iterable(present)), np.int32, nnz
        )
        users = id_table(model._histories, "user")
        histories = list(model._histories.values())
        history_pages = np.fromiter(
            map(index.__getitem__, itertools.chain.from_iterable(histories)), np.int32
        )
    except KeyError as exc:  # every learned page is counted: this is a bug
        raise ModelError(f"co-visitation page {exc} is missing from its table") from exc
    weights = np.fromiter(
        itertools.chain.from_iterable(row.values() for row in present), np.float64, nnz
    )
    out_weight = np.fromiter(
        (out[page] if row else 0.0 for page, row in zip(pages, rows, strict=True)),
        np.float64,
        len(pages),
    )
    state = ModelState(
        values={
            "n_events_learned": model.n_events_learned,
            "clock": model._clock.state(),
            "mixture": model._mixture,
        },
        arrays={
            "out": out_weight,
            "neighbours.indptr": indptr_of(lengths),
            "neighbours.page": dst,
            "neighbours.weight": weights,
            "histories.indptr": indptr_of([len(h) for h in histories]),
            "histories.page": history_pages,
        },
        strings={"pages": pages, "users": users},
    )
    state.nest("popularity", pop.state_arrays(index))
    return state


def load_graph(state: ModelState, pop: DecayedPopularity) -> StoredGraph:
    """Restore ``pop`` (a fresh model's popularity) from ``state`` and read the graph and
    user buffers into a checked :class:`StoredGraph`; the scalars are the caller's."""
    pages = state.table("pages")
    pop.restore(state.sub("popularity"), pages)
    if list(pop._counts) != pages:
        raise ModelError("co-visitation state: page table is not popularity's order")
    return StoredGraph(state, pages)
