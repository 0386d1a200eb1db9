"""The transition graph of a loaded snapshot, served from its arrays.

A scorer loads a snapshot to serve it, not to learn: :class:`StoredGraph` keeps the
graph and the user buffers of :func:`online_model.models.covisit.state.export_state` as
the checked arrays, answers candidate queries from them (with the floats
:meth:`Covisitation._top_transitions` computes from the dicts), and builds the dicts
(:data:`STORED_DICTS`) only when something needs them: learning, pickling, forgetting.
Never pickled.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

from online_model.errors import ModelError
from online_model.state import ModelState, check_indptr, check_rows

#: The attributes of a model loaded from arrays that are built as dicts on first use.
STORED_DICTS = ("_neighbours", "_out", "_histories")


class StoredGraph:
    """The transition graph and user buffers of a model's state arrays, read back and
    checked, answering candidate queries until they are needed as dicts."""

    def __init__(self, state: ModelState, pages: list[str]) -> None:
        n_pages = len(pages)
        self.pages = pages
        self.out = state.array("out", np.float64)
        self.dst = state.array("neighbours.page", np.int32)
        self.weight = state.array("neighbours.weight", np.float64)
        if len(self.out) != n_pages or len(self.dst) != len(self.weight):
            raise ModelError("co-visitation state: graph arrays differ in length")
        self.indptr = check_indptr(
            state.array("neighbours.indptr", np.int64), n_pages, len(self.dst), "neighbours"
        )
        check_rows(self.dst, n_pages, "neighbours.page")  # checked once, used many times
        self.users = state.table("users")
        self.history_pages = state.array("histories.page", np.int32)
        self.history_indptr = check_indptr(
            state.array("histories.indptr", np.int64),
            len(self.users),
            len(self.history_pages),
            "histories",
        )
        check_rows(self.history_pages, n_pages, "histories.page")
        self._index: dict[Hashable, int] | None = None

    def candidates(self, i: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Page ``i``'s ``n`` strongest successors (rows) and P(successor | page) -
        :meth:`Covisitation._top_transitions` on the arrays, with the same floats: a
        stable sort by decreasing weight is ``heapq.nlargest``'s order, and each weight
        is multiplied by the same ``1.0 / out``."""
        a, b = self.indptr[i], self.indptr[i + 1]
        if a == b:
            return None
        row = self.weight[a:b]
        top = np.argsort(-row, kind="stable")[:n]
        return self.dst[a:b][top].astype(np.intp), row[top] * (1.0 / float(self.out[i]))

    def top_transitions(self, item: Hashable, n: int) -> list[tuple[Hashable, float]]:
        """:meth:`candidates` of the page ``item`` as (page, probability) pairs."""
        if self._index is None:
            self._index = {page: i for i, page in enumerate(self.pages)}
        i = self._index.get(item)
        found = None if i is None else self.candidates(i, n)
        if found is None:
            return []
        pages = self.pages
        return [(pages[j], p) for j, p in zip(found[0].tolist(), found[1].tolist(), strict=True)]

    def as_dicts(self) -> dict[str, Any]:
        """``_neighbours``, ``_out`` and ``_histories`` as the learning code keeps them."""
        pages, indptr = self.pages, self.indptr
        dst_pages = [pages[j] for j in self.dst.tolist()]
        weights, out = self.weight.tolist(), self.out.tolist()
        neighbours: dict[Hashable, dict[Hashable, float]] = {}
        out_weight: dict[Hashable, float] = {}
        for i, (a, b) in enumerate(itertools.pairwise(indptr)):
            if b > a:
                page = pages[i]
                neighbours[page] = dict(zip(dst_pages[a:b], weights[a:b], strict=True))
                out_weight[page] = out[i]
        flat = [pages[j] for j in self.history_pages.tolist()]
        hptr = self.history_indptr
        histories = OrderedDict(
            (user, flat[a:b]) for user, a, b in zip(self.users, hptr, hptr[1:], strict=False)
        )
        return {"_neighbours": neighbours, "_out": out_weight, "_histories": histories}
