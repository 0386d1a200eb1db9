"""The dict serving path of a co-visitation model: the scores of a history's candidates.

Score = ``(1 - m) P_trans(p) + m P_pop(p)`` over the transition candidates of the last
``n_recent`` distinct history pages (:func:`transition_sums`); popular pages that are
not candidates fill the list with ``m P_pop(p)``. The answer is the top ``k`` of
``[candidates..., fills...]`` by a stable sort (ties keep that order). The numpy path
(:mod:`online_model.models.covisit.frozen`) computes exactly that, with the same float
operations in the same order: a change here is a change there.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Sequence
from operator import itemgetter
from typing import Protocol

from online_model.models.popularity import DecayedPopularity


class Scored(Protocol):
    """What serving reads of the model (:class:`Covisitation`)."""

    n_recent: int
    recency: float
    pop_exponent: float
    _mixture: float
    _popularity: DecayedPopularity
    _candidates: dict[Hashable, list[tuple[Hashable, float]]]

    def _candidates_of(self, item: Hashable) -> list[tuple[Hashable, float]]: ...


def transition_sums(
    model: Scored, history: Sequence[Hashable]
) -> tuple[dict[Hashable, float], float]:
    """Unnormalised transition scores from the last ``n_recent`` distinct pages.

    Returns ``{p: sum of recency weight x P(p | q)}`` over those pages ``q`` and the
    sum of the recency weights of the pages that had candidates. The hot path of
    serving: the per-item candidate lists are cached, the first list is copied in C.
    """
    scores: dict[Hashable, float] = {}
    get = scores.get
    cache = model._candidates
    n_recent, recency = model.n_recent, model.recency
    seen: set[Hashable] = set()
    age_weight = 1.0
    total_weight = 0.0
    for prev in reversed(history):
        if prev in seen:
            continue
        seen.add(prev)
        cands = cache.get(prev)
        if cands is None:
            cands = model._candidates_of(prev)
        if cands:
            total_weight += age_weight
            if not scores:  # 0.0 + x == x: start from a copy of the first list
                if age_weight == 1.0:
                    scores = dict(cands)
                else:
                    scores = {item: p * age_weight for item, p in cands}
                get = scores.get
            elif age_weight == 1.0:
                for item, p in cands:
                    scores[item] = get(item, 0.0) + p
            else:
                for item, p in cands:
                    scores[item] = get(item, 0.0) + p * age_weight
        age_weight *= recency
        if len(seen) >= n_recent:
            break
    return scores, total_weight


def mixed_scores(model: Scored, history: Sequence[Hashable]) -> dict[Hashable, float]:
    """``(1 - m) x`` the transition distribution from the last ``n_recent`` pages."""
    scores, total_weight = transition_sums(model, history)
    if not scores:
        return scores
    if model.pop_exponent:
        scores = pop_corrected(model, scores)
    norm = (1.0 - model._mixture) / total_weight
    return {i: s * norm for i, s in scores.items()}


def pop_corrected(model: Scored, scores: dict[Hashable, float]) -> dict[Hashable, float]:
    """``scores`` divided by ``popularity ** pop_exponent``."""
    counts, e = model._popularity._counts, -model.pop_exponent
    return {i: s * max(counts[i], 1e-300) ** e for i, s in scores.items()}


def recommend_dicts(
    model: Scored,
    user: Hashable,
    k: int,
    history: Sequence[Hashable],
    exclude: Collection[Hashable],
) -> list[tuple[Hashable, float]]:
    """:meth:`Covisitation._recommend` with dicts: for a model that is learning, and the
    rare cases the frozen view defers."""
    scores, total_weight = transition_sums(model, history)
    pop = model._popularity
    b = model._mixture
    fills: list[tuple[Hashable, float]] = []
    append = fills.append
    for item, p in pop.top():
        if item not in scores and item not in exclude:
            append((item, b * p))
            if len(fills) >= k:
                break
    if len(fills) >= k:
        # k fills score at least ``floor``: a candidate below it cannot make the top k.
        floor = min(score for _, score in fills)
    else:
        floor = -math.inf
        if len(scores) + len(fills) < k + len(exclude):
            # Rare: ``exclude`` swallowed the top list; look further down.
            filled = {item for item, _ in fills}
            fills += [
                (item, b * p)
                for item, p in pop._recommend(user, k, (), exclude)
                if item not in scores and item not in filled
            ]
    if scores:
        if model.pop_exponent:
            scores = pop_corrected(model, scores)
        norm = (1.0 - b) / total_weight
        if b:
            counts, scale = pop._counts, b / pop._total
            ranked = [
                (i, v)
                for i, s in scores.items()
                if (v := s * norm + scale * counts[i]) >= floor and i not in exclude
            ]
        else:
            ranked = [
                (i, v) for i, s in scores.items() if (v := s * norm) >= floor and i not in exclude
            ]
        ranked += fills
    else:
        ranked = fills
    ranked.sort(key=itemgetter(1), reverse=True)  # stable: ties keep candidates first
    return ranked[:k]
