"""The batch layer: an item-item model over whole user histories (EASE), fit in one pass.

Fitting is a pure function of a page-view log, split in the steps a batch job
distributes:

1. :func:`recent_page_sets` — per user, the last ``history_length`` distinct pages
   (a group-by-user; in Spark ``groupByKey`` on the user).
2. :func:`select_pages` — the ``max_pages`` pages in most users' sets (a count per page).
3. :func:`page_pair_counts` — the Gram matrix ``XᵀX`` of the user x page indicator matrix
   ``X`` as sparse counts: for every pair of pages ``i <= j``, the number of users whose
   set holds both (the diagonal: users holding ``i``). In Spark: ``flatMap`` each user's
   set to its pairs, ``reduceByKey(add)``. This is the only step whose cost grows with
   the log; everything else is per page.
4. :func:`ease_weights` — EASE (Steck, 2019), solved on one machine:
   ``P = (XᵀX + λI)⁻¹``, ``B = I - P · diag(1 / diag(P))`` with ``diag(B) = 0``; O(pages³).
5. :func:`neighbour_table` — the strongest ``n_neighbours`` positive weights of each row of
   ``B``, which is all the layer keeps (O(pages x n_neighbours)).

:func:`fit_item_item` chains them. A user is scored from their recent pages ``h`` as
``s_j = sum_{i in h} B[i, j]``; :meth:`ItemItem.probabilities` turns that into a
distribution over pages so that it can be mixed with the online layer's.

>>> events = [("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("b", "y", 4), ("c", "x", 5)]
>>> layer = fit_item_item(events, l2=0.5)
>>> layer.pages, layer.n_events
(['x', 'y'], 5)
>>> [page for page, _ in layer.probabilities(["x"]).items()]
['y']
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from online_model.errors import ModelError
from online_model.state import ModelState, check_indptr, id_table, indptr_of

logger = logging.getLogger(__name__)

#: Chosen on the quick worlds of bench/worlds.py and confirmed at full scale (bench/MODELS.md).
#: The fit reads (nearly) whole histories: the last 20 pages alone left most of the Gram
#: matrix out on long-history logs (item-item alone, MovieLens-like world: hit@10
#: 0.046 with 20 pages, 0.080 with 200; bench/results/hybrid.md).
HISTORY_LENGTH = 200
MAX_PAGES = 5_000
L2 = 200.0
N_NEIGHBOURS = 100


def recent_page_sets(
    events: Iterable[Sequence[Any]], history_length: int = HISTORY_LENGTH
) -> dict[Hashable, list[Hashable]]:
    """Each user's last ``history_length`` distinct pages, oldest first.

    ``events`` are ``(user, page, ...)`` in time order; a page viewed again moves to the
    end of its user's set.
    """
    if history_length < 1:
        raise ModelError(f"history_length must be at least 1, got {history_length}")
    sets: dict[Hashable, OrderedDict[Hashable, None]] = {}
    for event in events:
        user, page = event[0], event[1]
        recent = sets.get(user)
        if recent is None:
            recent = sets[user] = OrderedDict()
        elif page in recent:
            recent.move_to_end(page)
            continue
        recent[page] = None
        if len(recent) > history_length:
            recent.popitem(last=False)
    return {user: list(recent) for user, recent in sets.items()}


def select_pages(
    page_sets: Iterable[Sequence[Hashable]], max_pages: int = MAX_PAGES
) -> list[Hashable]:
    """The ``max_pages`` pages in most users' sets, most held first (ties: first seen)."""
    held: dict[Hashable, int] = {}
    for pages in page_sets:
        for page in pages:
            held[page] = held.get(page, 0) + 1
    ranked = sorted(held, key=held.__getitem__, reverse=True)  # stable: first seen wins ties
    return ranked[:max_pages]


@dataclass(frozen=True)
class PairCounts:
    """Sparse upper triangle (``row <= col``) of the Gram matrix ``XᵀX``, in page rows."""

    n_pages: int
    row: np.ndarray  # int64
    col: np.ndarray  # int64
    count: np.ndarray  # float64

    def dense(self) -> np.ndarray:
        """The full symmetric ``n_pages x n_pages`` matrix."""
        gram = np.zeros((self.n_pages, self.n_pages))
        gram[self.row, self.col] = self.count
        gram[self.col, self.row] = self.count
        return gram


def page_pair_counts(page_rows: Iterable[Sequence[int]], n_pages: int) -> PairCounts:
    """Users holding each pair of pages: the Gram matrix step, replaceable by a batch job.

    ``page_rows`` are the users' page sets as distinct row numbers in ``[0, n_pages)``.
    A job that computes the same counts elsewhere (say Spark's ``reduceByKey`` over the
    pairs of each user's set) builds :class:`PairCounts` from them and calls
    :func:`ease_weights` directly.
    """
    indptr = [0]
    parts: list[np.ndarray] = []
    for rows in page_rows:
        idx = np.asarray(rows, dtype=np.int64)
        if len(idx) == 0:
            continue
        if len(np.unique(idx)) != len(idx) or idx.min() < 0 or idx.max() >= n_pages:
            raise ModelError("a user's page set must hold distinct rows of the page table")
        parts.append(idx)
        indptr.append(indptr[-1] + len(idx))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return PairCounts(n_pages, empty, empty.copy(), np.zeros(0))
    # X (users x pages, 0/1) in CSR; XᵀX by a sparse product costs O(sum of set sizes²)
    # in C, so whole histories (hundreds of pages per user) stay cheap.
    flat = np.concatenate(parts)
    x = sparse.csr_matrix(
        (np.ones(len(flat)), flat, np.asarray(indptr, dtype=np.int64)),
        shape=(len(parts), n_pages),
    )
    gram = (x.T @ x).tocoo()
    upper = gram.row <= gram.col
    row, col, count = gram.row[upper], gram.col[upper], gram.data[upper]
    order = np.lexsort((col, row))
    return PairCounts(
        n_pages,
        row[order].astype(np.int64),
        col[order].astype(np.int64),
        count[order].astype(np.float64),
    )


def ease_weights(counts: PairCounts, l2: float = L2) -> np.ndarray:
    """EASE item-item weights ``B`` (dense, zero diagonal) from the Gram matrix counts."""
    if l2 <= 0:
        raise ModelError(f"l2 must be positive, got {l2}")
    gram = counts.dense()
    gram[np.diag_indices_from(gram)] += l2
    precision = np.linalg.inv(gram)
    weights = precision / -np.diag(precision)  # column j divided by -P_jj
    np.fill_diagonal(weights, 0.0)
    return weights


def neighbour_table(
    weights: np.ndarray, n_neighbours: int = N_NEIGHBOURS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``n_neighbours`` largest positive weights as CSR (indptr, page, weight).

    Within a row, neighbours are ordered by decreasing weight (ties: lower page row first).
    """
    n = weights.shape[0]
    take = min(n_neighbours, max(n - 1, 0))
    if n == 0 or take == 0:
        return indptr_of([0] * n), np.zeros(0, np.int32), np.zeros(0, np.float64)
    top = (
        np.argpartition(-weights, take - 1, axis=1)[:, :take]
        if take < n
        else np.tile(np.arange(n), (n, 1))
    )
    top_w = np.take_along_axis(weights, top, axis=1)
    order = np.lexsort((top, -top_w), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    top_w = np.take_along_axis(top_w, order, axis=1)
    keep = top_w > 0
    lengths = keep.sum(axis=1)
    return indptr_of(lengths.tolist()), top[keep].astype(np.int32), top_w[keep].astype(np.float64)


class ItemItem:
    """A fitted batch layer: the pages it knows and each page's strongest neighbours.

    Parameters record how it was fit; ``n_events`` is how many events of the log it
    covers (the log's first ``n_events``), and ``position`` what a batch job records about
    where those end (say Kafka offsets per partition): the online layer of a
    :class:`~online_model.models.hybrid.Hybrid` learns exactly the events after it.
    """

    #: The name files record for this class (:mod:`online_model.state.registration`).
    STORED_AS: ClassVar[str] = "online_model.itemitem.ItemItem"

    def __init__(
        self,
        pages: list[Hashable],
        indptr: np.ndarray,
        neighbour: np.ndarray,
        weight: np.ndarray,
        *,
        n_events: int,
        params: Mapping[str, Any] | None = None,
        position: Any = None,
    ) -> None:
        self.pages = pages
        self.index = {page: i for i, page in enumerate(pages)}
        self.indptr = indptr
        self.neighbour = neighbour
        self.weight = weight
        self.n_events = n_events
        self.params = dict(params or {})
        self.position = n_events if position is None else position
        self.history_length = int(self.params.get("history_length", HISTORY_LENGTH))
        bounds = check_indptr(indptr, len(pages), len(neighbour), "item-item neighbours")
        if len(weight) != len(neighbour):
            raise ModelError("item-item state: neighbour and weight arrays differ in length")
        if len(neighbour) and (int(neighbour.min()) < 0 or int(neighbour.max()) >= len(pages)):
            raise ModelError("item-item state: neighbours outside the page table")
        self._bounds = bounds

    @property
    def n_pages(self) -> int:
        return len(self.pages)

    def score_vector(
        self, history: Sequence[Hashable], n_recent: int | None = None, recency: float = 1.0
    ) -> np.ndarray | None:
        """``s_j`` for every page from the last ``n_recent`` distinct pages of ``history``
        (default: the fit's ``history_length``), the page of age ``a`` (0: the newest)
        weighted ``recency ** a``; None when none of them is known with a neighbour."""
        index, bounds = self.index, self._bounds
        limit = self.history_length if n_recent is None else n_recent
        parts_idx: list[np.ndarray] = []
        parts_w: list[np.ndarray] = []
        seen: set[Hashable] = set()
        age_weight = 1.0
        for page in reversed(history):
            if page in seen:
                continue
            seen.add(page)
            row = index.get(page)
            if row is not None and bounds[row] < bounds[row + 1]:  # a page with neighbours
                a, b = bounds[row], bounds[row + 1]
                parts_idx.append(self.neighbour[a:b])
                weights = self.weight[a:b]
                parts_w.append(weights if age_weight == 1.0 else weights * age_weight)
            age_weight *= recency
            if len(seen) >= limit:
                break
        if not parts_idx:
            return None
        return np.bincount(
            np.concatenate(parts_idx), weights=np.concatenate(parts_w), minlength=self.n_pages
        )

    def distribution(
        self, history: Sequence[Hashable], n_recent: int | None = None, recency: float = 1.0
    ) -> Distribution | None:
        """``P_batch(page | history)``: the positive scores normalised to sum to 1, or None
        when no page of ``history`` is known or nothing scores above 0."""
        scores = self.score_vector(history, n_recent, recency)
        if scores is None:
            return None
        np.maximum(scores, 0.0, out=scores)
        total = float(scores.sum())
        return Distribution(self, scores / total) if total > 0 else None

    def probabilities(self, history: Sequence[Hashable]) -> dict[Hashable, float]:
        """Every page with ``P_batch(page | history) > 0``, best first."""
        dist = self.distribution(history)
        return {} if dist is None else dict(dist.top(self.n_pages))

    # -- pickle-free state (online_model.state) ------------------------------------
    def state_arrays(self) -> ModelState:
        """Pages as a string table; neighbours as CSR rows of it; the fit's parameters,
        event count and position as values."""
        return ModelState(
            values={"n_events": self.n_events, "params": self.params, "position": self.position},
            arrays={
                "neighbours.indptr": self.indptr,
                "neighbours.page": self.neighbour,
                "neighbours.weight": self.weight,
            },
            strings={"pages": id_table(self.pages, "page")},
        )

    @classmethod
    def from_state(cls, state: ModelState) -> ItemItem:
        """Inverse of :meth:`state_arrays`."""
        values = state.values
        return cls(
            list(state.table("pages")),
            state.array("neighbours.indptr", np.int64),
            state.array("neighbours.page", np.int32),
            state.array("neighbours.weight", np.float64),
            n_events=int(values["n_events"]),
            params=values.get("params"),
            position=values.get("position"),
        )


class Distribution:
    """``P_batch(page | history)`` over the pages of an :class:`ItemItem` layer."""

    def __init__(self, layer: ItemItem, probability: np.ndarray) -> None:
        self.layer = layer
        self.probability = probability
        # The pages above 0, best first (ties: lower row first), built on first ranking.
        # A history reaches a few hundred pages at most, so serving ranks and looks up
        # those instead of every page of the layer.
        self._ranked: dict[Hashable, float] | None = None

    def _ranking(self) -> dict[Hashable, float]:
        ranked = self._ranked
        if ranked is None:
            prob = self.probability
            rows = np.flatnonzero(prob > 0.0)
            rows = rows[np.lexsort((rows, -prob[rows]))]
            pages = self.layer.pages
            ranked = self._ranked = dict(
                zip([pages[r] for r in rows.tolist()], prob[rows].tolist(), strict=True)
            )
        return ranked

    def get(self, page: Hashable, default: float = 0.0) -> float:
        """``P_batch(page)``; ``default`` for a page the layer does not know."""
        if self._ranked is not None:
            p = self._ranked.get(page)
            if p is not None:
                return p
            return 0.0 if page in self.layer.index else default
        row = self.layer.index.get(page)
        return default if row is None else float(self.probability[row])

    def top(self, n: int, exclude: Collection[Hashable] = ()) -> list[tuple[Hashable, float]]:
        """The ``n`` most likely pages not in ``exclude`` (probability > 0), best first."""
        out: list[tuple[Hashable, float]] = []
        if n <= 0:
            return out
        for page, p in self._ranking().items():
            if page not in exclude:
                out.append((page, p))
                if len(out) >= n:
                    break
        return out


def fit_item_item(
    events: Iterable[Sequence[Any]],
    *,
    history_length: int = HISTORY_LENGTH,
    max_pages: int = MAX_PAGES,
    l2: float = L2,
    n_neighbours: int = N_NEIGHBOURS,
    position: Any = None,
) -> ItemItem:
    """Fit the batch layer on time-ordered ``(user, page, ...)`` events (no I/O).

    ``position`` is recorded as the end of the events covered (default: their count).
    """
    events = events if isinstance(events, Sequence) else list(events)
    page_sets = recent_page_sets(events, history_length)
    pages = select_pages(page_sets.values(), max_pages)
    index = {page: i for i, page in enumerate(pages)}
    rows = ([index[p] for p in pages_of if p in index] for pages_of in page_sets.values())
    counts = page_pair_counts(rows, len(pages))
    indptr, neighbour, weight = neighbour_table(ease_weights(counts, l2), n_neighbours)
    params = {
        "history_length": history_length,
        "max_pages": max_pages,
        "l2": l2,
        "n_neighbours": n_neighbours,
    }
    logger.info(
        "item-item fit events=%d pages=%d pairs=%d", len(events), len(pages), len(counts.count)
    )
    return ItemItem(
        pages, indptr, neighbour, weight, n_events=len(events), params=params, position=position
    )
