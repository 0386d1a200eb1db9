"""The online weight of popularity in a co-visitation model's served mixture.

Serving scores ``(1 - m) P_transitions(p) + m P_popularity(p)``. ``m`` starts at the
``backoff`` parameter (:func:`clamped`) and, when ``backoff_rate`` is set, takes one
online EM step per learned event (:func:`update_mixture`, deleted interpolation done
prequentially): both parts score the page the user actually viewed, before it is
learned, with the weights serving would use (the last ``n_recent`` pages, ``recency``).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from online_model.models.popularity import DecayedPopularity

#: Bounds of the popularity share of the mixture (never exactly 0 or 1: EM would stick).
MIN_MIXTURE = 1e-4


class Mixed(Protocol):
    """What the update reads of the model (:class:`Covisitation`), and ``_mixture``."""

    n_recent: int
    recency: float
    backoff_rate: float
    _mixture: float
    _popularity: DecayedPopularity
    _neighbours: dict[Hashable, dict[Hashable, float]]
    _out: dict[Hashable, float]


def clamped(m: float) -> float:
    """``m`` within ``[MIN_MIXTURE, 1 - MIN_MIXTURE]``."""
    return min(max(m, MIN_MIXTURE), 1.0 - MIN_MIXTURE)


def update_mixture(
    model: Mixed, hist: list[Hashable], item: Hashable, scorer: Mixed | None = None
) -> None:
    """One online EM step on the weight of popularity, scored before learning ``item``.

    The served score is the mixture ``(1 - m) P_transitions + m P_popularity``; here
    both parts are asked how likely the page the user actually viewed was, and ``m``
    moves towards the share of that likelihood popularity explains (deleted
    interpolation, done prequentially). Repeats are skipped: serving excludes them.

    ``scorer`` is the model whose two parts are asked (default: ``model`` itself). A
    model that learns one partition of the events passes the merged model scorers serve:
    its own graph holds a fraction of the evidence, and would credit popularity with
    more than its share (docs/models.md, trainer shards).
    """
    ref = model if scorer is None else scorer
    pop = ref._popularity
    if not pop._total:
        return
    if item in hist:
        return
    num = den = 0.0
    age_weight = 1.0
    neighbours, out, recency = ref._neighbours, ref._out, model.recency
    for n_used, prev in enumerate(reversed(hist)):
        if n_used >= model.n_recent:
            break
        row = neighbours.get(prev)
        if row:
            num += age_weight * row.get(item, 0.0) / out[prev]
            den += age_weight
        age_weight *= recency
    if not den:
        return  # nothing to compare: serving would be popularity alone
    p_pop = pop._counts.get(item, 0.0) / pop._total
    if not num and item not in pop._top:
        return  # neither part could have ranked it: no evidence about the mix
    m = model._mixture
    mix = m * p_pop + (1.0 - m) * num / den
    if mix > 0.0:
        m += model.backoff_rate * (m * p_pop / mix - m)
        model._mixture = min(max(m, MIN_MIXTURE), 1.0 - MIN_MIXTURE)  # clamped(m), inline
