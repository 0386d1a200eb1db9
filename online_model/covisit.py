"""Item-to-item co-visitation over each user's recent pages (sequential transitions)."""

from __future__ import annotations

import copy
import heapq
import logging
from collections import OrderedDict
from collections.abc import Collection, Hashable, Sequence
from operator import itemgetter
from typing import Any

from online_model.base import Recommender
from online_model.decay import ForwardDecay
from online_model.popularity import DecayedPopularity

logger = logging.getLogger(__name__)

#: Bounds of the popularity share of the mixture (never exactly 0 or 1: EM would stick).
_MIN_MIXTURE = 1e-4


class Covisitation(Recommender):
    """Recommend pages that followed (or preceded) the user's recent pages.

    Learning: when a user views ``p``, every page ``q`` among their last ``window`` views
    gets the transition ``q -> p`` with weight ``decay_position ** (distance - 1)``, and
    ``p -> q`` gets ``backward_weight`` times that (co-visitation regardless of order).
    Weights are forward-decayed in time, so stale links fade. Each item keeps at most
    ``max_neighbours`` neighbours (the weakest are pruned), so memory is
    O(items x max_neighbours) plus a recent-history buffer of ``window`` pages for at
    most ``max_users`` users (least recently active users are evicted first).

    Serving: for the last ``n_recent`` pages of ``history`` (weights
    ``recency ** age``), average the normalised transition probabilities
    ``P(p | q) / popularity(p) ** pop_exponent`` into ``P_trans(p)`` and mix it with
    "trending" popularity: ``(1 - m) P_trans(p) + m P_pop(p)``. Popularity decays fast
    (``pop_half_life``) so it says what is read *now*, and it also fills the list for
    unknown histories.

    The mixture weight ``m`` starts at ``backoff`` and is learned online (deleted
    interpolation): before each event is learned, both parts score the page the user
    actually viewed and ``m`` takes a step of size ``backoff_rate`` towards the share
    popularity explains. Repeats of the user's recent pages, and pages neither part
    could rank, are skipped. So ``m`` settles high where clicks follow what is hot (news)
    and low where they follow the previous page (shop sessions, album plays); see
    ``bench/MODELS.md`` for the cross-world measurement.

    Parameters
    ----------
    window
        How many previous pages of the user pair with a new page.
    decay_position
        Weight factor per step of distance inside the window.
    backward_weight
        Weight of the reverse pair ``p -> q`` relative to ``q -> p``.
    max_neighbours
        Neighbours kept per item.
    n_candidates
        Strongest neighbours of each history page considered at serving time; they are
        cached per item until the item's row changes, so a frozen snapshot serves fast.
    n_recent
        History pages used at serving time.
    recency
        Weight factor per step of age of a history page at serving time.
    pop_exponent
        Divides transition scores by ``popularity ** pop_exponent`` (0 = no correction;
        larger values favour niche pages).
    backoff
        Initial weight ``m`` of popularity in the mixture (fixed if ``backoff_rate=0``).
    backoff_rate
        Step size of the online update of ``m`` (≈ 1 / events it averages over).
    half_life
        Half-life of transition evidence, in events or seconds (see ``unit``); 0
        disables decay.
    unit
        ``"events"`` or ``"seconds"`` (reads ``x["ts"]``, epoch ms).
    pop_half_life
        Half-life of the popularity part (same unit); ``None`` uses ``half_life``.
    max_users
        Users whose recent pages are kept for learning transitions (LRU).
    seed
        Unused (the model is deterministic); kept for a uniform constructor.

    Examples
    --------
    >>> model = Covisitation()
    >>> for user in ["u1", "u2", "u3"]:
    ...     for page in ["home", "sports", "football"]:
    ...         model.learn_one(user, page)
    >>> model.learn_one("u4", "home")
    >>> [page for page, _ in model.recommend("new-user", k=2, history=["home", "sports"])]
    ['football', 'home']
    >>> [page for page, _ in model.recommend("x", k=1, history=["sports"], exclude={"football"})]
    ['home']
    """

    def __init__(
        self,
        window: int = 5,
        decay_position: float = 0.6,
        backward_weight: float = 0.5,
        max_neighbours: int = 50,
        n_candidates: int = 30,
        n_recent: int = 5,
        recency: float = 0.5,
        pop_exponent: float = 0.0,
        backoff: float = 0.1,
        backoff_rate: float = 0.001,
        half_life: float = 200_000,
        unit: str = "events",
        pop_half_life: float | None = 1_000,
        max_users: int = 100_000,
        seed: int | None = None,
    ) -> None:
        self.window = window
        self.decay_position = decay_position
        self.backward_weight = backward_weight
        self.max_neighbours = max_neighbours
        self.n_candidates = n_candidates
        self.n_recent = n_recent
        self.recency = recency
        self.pop_exponent = pop_exponent
        self.backoff = backoff
        self.backoff_rate = backoff_rate
        self.half_life = half_life
        self.unit = unit
        self.pop_half_life = pop_half_life
        self.max_users = max_users
        self.seed = seed
        self.n_events_learned = 0
        self._clock = ForwardDecay(half_life, unit)
        self._popularity = DecayedPopularity(
            half_life=half_life if pop_half_life is None else pop_half_life, unit=unit
        )
        self._neighbours: dict[Hashable, dict[Hashable, float]] = {}
        self._out: dict[Hashable, float] = {}  # total outgoing weight, pruned mass included
        self._histories: OrderedDict[Hashable, list[Hashable]] = OrderedDict()
        # Derived, not pickled: normalised top neighbours per item.
        self._candidates: dict[Hashable, list[tuple[Hashable, float]]] = {}
        self._position_weights = [decay_position**d for d in range(window)]
        self._mixture = min(max(backoff, _MIN_MIXTURE), 1.0 - _MIN_MIXTURE)

    @property
    def n_items(self) -> int:
        return self._popularity.n_items

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_candidates": {}}  # a cache: rebuilt on demand

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_mixture" not in state:
            # A snapshot from before the adaptive mixture: popularity shared the link
            # clock and had a fixed weight; keep serving it that way.
            state.update(pop_half_life=None, backoff_rate=0.0, _mixture=state["backoff"])
            state["_popularity"]._clock = copy.deepcopy(state["_clock"])
        self.__dict__.update(state)

    def user_history(self, user: Hashable) -> Sequence[Hashable]:
        return self._histories.get(user, ())

    def learn_one(
        self,
        user: Hashable,
        item: Hashable,
        y: float | None = None,
        x: dict[str, Any] | None = None,
    ) -> None:
        weight, rescale = self._clock.tick(x)
        if rescale is not None:
            self._rescale(rescale)
        hist = self._histories.get(user)
        if hist and self.backoff_rate:
            self._update_mixture(hist, item)
        self._popularity.learn_one(user, item, x=x)
        if hist is None:
            hist = self._histories[user] = []
            if len(self._histories) > self.max_users:
                self._histories.popitem(last=False)
        else:
            self._histories.move_to_end(user)
            back = self.backward_weight
            for dist, prev in enumerate(reversed(hist)):
                if prev == item:
                    continue  # a reload is not a transition
                w = weight * self._position_weights[dist]
                self._link(prev, item, w)
                if back:
                    self._link(item, prev, w * back)
        hist.append(item)
        if len(hist) > self.window:
            del hist[0]
        self.n_events_learned += 1

    def _update_mixture(self, hist: list[Hashable], item: Hashable) -> None:
        """One online EM step on the weight of popularity, scored before learning ``item``.

        The served score is the mixture ``(1 - m) P_transitions + m P_popularity``; here
        both parts are asked how likely the page the user actually viewed was, and ``m``
        moves towards the share of that likelihood popularity explains (deleted
        interpolation, done prequentially). Repeats are skipped: serving excludes them.
        """
        pop = self._popularity
        if not pop._total:
            return
        if item in hist:
            return
        num = den = 0.0
        age_weight = 1.0
        neighbours, out, recency = self._neighbours, self._out, self.recency
        for n_used, prev in enumerate(reversed(hist)):
            if n_used >= self.n_recent:
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
        m = self._mixture
        mix = m * p_pop + (1.0 - m) * num / den
        if mix > 0.0:
            m += self.backoff_rate * (m * p_pop / mix - m)
            self._mixture = min(max(m, _MIN_MIXTURE), 1.0 - _MIN_MIXTURE)

    def _link(self, src: Hashable, dst: Hashable, w: float) -> None:
        row = self._neighbours.get(src)
        if row is None:
            row = self._neighbours[src] = {}
        row[dst] = row.get(dst, 0.0) + w
        self._out[src] = self._out.get(src, 0.0) + w
        self._candidates.pop(src, None)
        if len(row) > 2 * self.max_neighbours:
            # Amortised pruning: keep the strongest half once the row doubles.
            kept = heapq.nlargest(self.max_neighbours, row.items(), key=itemgetter(1))
            self._neighbours[src] = dict(kept)

    def _rescale(self, factor: float) -> None:
        self._out = {i: v * factor for i, v in self._out.items()}
        for row in self._neighbours.values():
            for j in row:
                row[j] *= factor
        # Cached candidates are normalised by ``_out``: the factor cancels out.

    def _candidates_of(self, item: Hashable) -> list[tuple[Hashable, float]]:
        """The ``n_candidates`` strongest transitions of ``item`` as (next, P(next|item))."""
        cands = self._candidates.get(item)
        if cands is None:
            row = self._neighbours.get(item)
            if not row:
                return []
            norm = 1.0 / self._out[item]
            top = heapq.nlargest(self.n_candidates, row.items(), key=itemgetter(1))
            cands = self._candidates[item] = [(j, w * norm) for j, w in top]
        return cands

    def _scores(self, history: Sequence[Hashable]) -> dict[Hashable, float]:
        """``(1 - m) x`` the transition distribution from the last ``n_recent`` pages."""
        scores: dict[Hashable, float] = {}
        get = scores.get
        seen: set[Hashable] = set()
        age_weight = 1.0
        total_weight = 0.0
        for prev in reversed(history):
            if prev in seen:
                continue
            seen.add(prev)
            cands = self._candidates_of(prev)
            if cands:
                total_weight += age_weight
            if age_weight == 1.0:
                for item, p in cands:
                    scores[item] = get(item, 0.0) + p
            else:
                for item, p in cands:
                    scores[item] = get(item, 0.0) + p * age_weight
            age_weight *= self.recency
            if len(seen) >= self.n_recent:
                break
        if not scores:
            return scores
        if self.pop_exponent:
            counts, e = self._popularity._counts, -self.pop_exponent
            scores = {i: s * max(counts[i], 1e-300) ** e for i, s in scores.items()}
        norm = (1.0 - self._mixture) / total_weight
        return {i: s * norm for i, s in scores.items()}

    def score_items(
        self, user: Hashable, items: Sequence[Hashable], history: Sequence[Hashable] = ()
    ) -> list[float]:
        scores = self._scores(history)
        prob, b = self._popularity.probability, self._mixture
        return [scores.get(i, 0.0) + b * prob(i) for i in items]

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        scores = self._scores(history)
        b = self._mixture
        if b and scores:
            pop = self._popularity
            counts, scale = pop._counts, b / pop._total
            scores = {i: s + scale * counts[i] for i, s in scores.items()}
        # Popular pages fill the list and compete through the backoff term.
        n_fill = 0
        for item, p in self._popularity.top():
            if item not in scores and item not in exclude:
                scores[item] = b * p
                n_fill += 1
                if n_fill >= k:
                    break
        if n_fill < k and len(scores) < k + len(exclude):
            for item, p in self._popularity._recommend(user, k, (), exclude):
                scores.setdefault(item, b * p)
        candidates = ((i, s) for i, s in scores.items() if i not in exclude)
        return heapq.nlargest(k, candidates, key=itemgetter(1))
