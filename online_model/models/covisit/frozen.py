"""The numpy serving path of a model that stopped learning (a served snapshot).

:class:`FrozenView` answers ``recommend`` from numpy arrays of the model's state and
must match the dict path (:func:`online_model.models.covisit.scoring.recommend_dicts`)
bit for bit, with tests/unit/test_covisit_fast_paths.py as its differential oracle: the
same candidates, the same float operations in the same order, the same stable tie
order. A change to the scoring rule changes both. :func:`frozen_view` builds the view
once the model served ``_FREEZE_AFTER`` calls without learning; a model loaded from
arrays gets one right away, reading candidates from its :class:`StoredGraph`.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from typing import Any, Protocol

import numpy as np

from online_model.models.covisit.stored import StoredGraph
from online_model.models.popularity import DecayedPopularity

#: Consecutive ``recommend`` calls without learning after which the model is treated as
#: frozen (a served snapshot) and answered from a numpy view of its state.
_FREEZE_AFTER = 64

#: "Not looked up yet" in the view's candidate cache (None means "no candidates").
MISSING: Any = object()


class Serving(Protocol):
    """What the view reads of the model (:class:`Covisitation`)."""

    n_events_learned: int
    n_recent: int
    n_candidates: int
    recency: float
    pop_exponent: float
    _mixture: float
    _popularity: DecayedPopularity
    _candidates: dict[Hashable, list[tuple[Hashable, float]]]
    # The view served and when to build one (:func:`frozen_view`).
    _frozen: FrozenView | None
    _serve_version: int
    _serve_calls: int

    def _top_transitions(self, item: Hashable) -> list[tuple[Hashable, float]]: ...


def frozen_view(model: Serving) -> FrozenView | None:
    """The numpy view of the model once it stopped learning, else None.

    A scorer serves a snapshot that never learns; the trainer's evaluator asks between
    two ``learn_one`` calls, so it never waits ``_FREEZE_AFTER`` calls and keeps the
    dict path (whose cost does not depend on the model's size).
    """
    version = model.n_events_learned
    frozen = model._frozen
    if frozen is not None and frozen.version == version:
        return frozen
    if model._serve_version != version:
        model._serve_version, model._serve_calls, model._frozen = version, 0, None
        return None
    model._serve_calls += 1
    if model._serve_calls < _FREEZE_AFTER or model.pop_exponent:
        return None
    frozen = model._frozen = FrozenView(model)
    return frozen


class FrozenView:
    """A model's serving state as numpy arrays, valid while it learns nothing more.

    Items are numbered in the order of the popularity counts; each history page's
    candidates become an index array and its probabilities, multiplied by each recency
    weight the first time that age is needed. One ``recommend`` then sums the candidates
    of the recent pages with ``bincount`` (in input order, so the sums are bit-for-bit
    those of the dict path), ranks every (page, candidate) position by a stable sort of
    the mixed score (equal scores keep the first position, as the dict's insertion order
    does) and walks the ranking in Python, skipping repeats and excluded pages and
    merging in the popular fills. Never pickled: the model drops it and rebuilds it on demand.
    """

    def __init__(self, model: Serving, stored: StoredGraph | None = None) -> None:
        # ``stored``: the arrays of a model loaded from a snapshot, whose page table is
        # ``pop._counts``'s order, i.e. this view's item numbering.
        self.stored = stored
        pop = model._popularity
        self.version = model.n_events_learned
        self.usable = True
        self.items: list[Hashable] = list(pop._counts)
        self.index = {item: i for i, item in enumerate(self.items)}
        self.n_recent = model.n_recent
        self.mixture = b = model._mixture
        counts = np.fromiter(pop._counts.values(), dtype=np.float64, count=len(self.items))
        # ``scale * counts[i]`` of the dict path, elementwise; nothing is added when b == 0.
        self.pop_term = counts * (b / pop._total) if b and pop._total else counts * 0.0
        self.fills = [(item, b * p) for item, p in pop.top()]
        # Position of each item in ``fills`` (``len(fills)`` for the others).
        self.fill_slot = np.full(len(self.items), len(self.fills), dtype=np.intp)
        self.fill_slot[[self.index[item] for item, _ in self.fills]] = np.arange(len(self.fills))
        # The recency weight of the i-th distinct history page, multiplied as in the loop.
        weights, w = [], 1.0
        for _ in range(max(self.n_recent, 1)):
            weights.append(w)
            w *= model.recency
        self.age_weights = weights
        self.candidates: dict[Hashable, tuple[np.ndarray, list[np.ndarray | None]] | None] = {}

    def _candidates_of(
        self, model: Serving, item: Hashable
    ) -> tuple[np.ndarray, list[np.ndarray | None]] | None:
        if self.stored is not None:
            found = self.stored.candidates(self.index[item], model.n_candidates)
            entry = None
            if found is not None:
                stored_levels: list[np.ndarray | None] = [None] * len(self.age_weights)
                stored_levels[0] = found[1]
                entry = (found[0], stored_levels)
            self.candidates[item] = entry
            return entry
        # While frozen, the dict path rarely needs its list: take it over (or compute it
        # without caching) so that serving does not hold every item's candidates twice.
        cands = model._candidates.pop(item, None) or model._top_transitions(item)
        entry = None
        if cands:
            index = self.index
            if any(j not in index for j, _ in cands):  # not expected: every item is counted
                self.usable = False
                return None
            idx = np.array([index[j] for j, _ in cands], dtype=np.intp)
            levels: list[np.ndarray | None] = [None] * len(self.age_weights)
            levels[0] = np.array([q for _, q in cands], dtype=np.float64)  # weight 1.0
            entry = (idx, levels)
        self.candidates[item] = entry
        return entry

    def recommend(
        self,
        model: Serving,
        k: int,
        history: Sequence[Hashable],
        exclude: Collection[Hashable],
    ) -> list[tuple[Hashable, float]] | None:
        """The top ``k`` as the dict path computes it, or None to defer to that path."""
        known, cache, age_weights = self.index, self.candidates, self.age_weights
        n_recent = self.n_recent
        idxs: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        seen: set[Hashable] = set()
        total_weight = 0.0
        age = 0
        for prev in reversed(history):
            if prev in seen:
                continue
            seen.add(prev)
            if prev in known:
                entry = cache.get(prev, MISSING)
                if entry is MISSING:
                    entry = self._candidates_of(model, prev)
                if entry is not None:
                    idxs.append(entry[0])
                    levels = entry[1]
                    prob = levels[age]
                    if prob is None:  # P(p | q) x the recency weight, made once per age
                        prob = levels[age] = levels[0] * age_weights[age]
                    probs.append(prob)
                    total_weight += age_weights[age]
            age += 1
            if age >= n_recent:
                break
        if not idxs or not self.usable:
            return None  # popularity alone: the dict path is as cheap
        if len(idxs) == 1:
            idx, prob = idxs[0], probs[0]
        else:
            idx, prob = np.concatenate(idxs), np.concatenate(probs)
        sums = np.bincount(idx, weights=prob)
        norm = (1.0 - self.mixture) / total_weight
        score = sums[idx] * norm + self.pop_term[idx]
        order = np.argsort(-score, kind="stable")
        ranked_items = idx[order].tolist()
        ranked_scores = score[order].tolist()

        is_candidate_fill = np.zeros(len(self.fills) + 1, dtype=bool)
        is_candidate_fill[self.fill_slot[idx]] = True
        fills: list[tuple[Hashable, float]] = []
        for fill, is_candidate in zip(self.fills, is_candidate_fill[:-1].tolist(), strict=True):
            if not is_candidate and fill[0] not in exclude:
                fills.append(fill)
                if len(fills) >= k:
                    break
        else:
            n_candidates = len(set(ranked_items))
            if len(fills) < k and n_candidates + len(fills) < k + len(exclude):
                return None  # ``exclude`` swallowed the top list: the dict path looks further

        out: list[tuple[Hashable, float]] = []
        items = self.items
        placed: set[int] = set()
        n_fills = len(fills)
        next_fill = 0
        for j, value in zip(ranked_items, ranked_scores, strict=True):
            if j in placed:
                continue  # a later position of a page already ranked
            placed.add(j)
            item = items[j]
            if item in exclude:
                continue
            while next_fill < n_fills and fills[next_fill][1] > value:
                out.append(fills[next_fill])
                next_fill += 1
                if len(out) >= k:
                    return out
            out.append((item, value))
            if len(out) >= k:
                return out
        out += fills[next_fill : next_fill + k - len(out)]
        return out
