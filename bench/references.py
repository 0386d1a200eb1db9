"""Reference recommenders: simple, published baselines to judge the models against.

Each is a :class:`~online_model.base.Recommender`, so it runs under exactly the protocol of
``streamrec evaluate`` (:mod:`online_model.evaluation`): for each event in time order,
recommend k pages for the user from what was learned so far (pages the user already saw
are excluded; users with no history yet are not scored), count a hit if the page actually
viewed is in the list (hit@k, MRR@k), then learn the event. The benches list them beside
the models, and any of them can be evaluated like a model::

    streamrec evaluate --input views.csv.gz --model bench.references:SequentialRules

The definitions (those of the reference set the quality targets are stated against;
each class below reproduces its reference's lists exactly, ties included):

- popularity: most viewed pages so far.
- covisit_w3: counts of transitions from each of the user's last 3 pages to the next
  page; a user's candidates are the top-50 successors of each of their last 3 pages,
  weighted 1, 1/2, 1/3 from the newest; popularity fills the rest.
- sr: sequential rules (Ludewig & Jannach 2018): (earlier -> later) pairs within 10
  steps weighted 1/gap; candidates follow the last page only.
- vsknn: vector-multiplied session kNN (same paper): the user's last 10 pages as the
  session, 100 nearest among 300 recent users who share a page, linear decay.

Ludewig, M., Jannach, D. (2018). Evaluation of session-based recommendation algorithms.
User Modeling and User-Adapted Interaction 28(4-5):331-390.

Ties: every ranking is a stable sort (as ``Counter.most_common`` ranks), so equal scores keep the
order in which the pages were first counted. Pages filled in from popularity carry the
score 0.0, below every candidate's. These are pure-Python baselines (~1-10k events/s),
not serving models: they have no snapshot format.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict, deque
from collections.abc import Collection, Hashable, Mapping, Sequence
from itertools import islice
from operator import itemgetter
from typing import Any

from online_model.base import Recommender, Reward

#: Weights of pages; ranked by :func:`_top`, in the order of ``Counter.most_common``.
Weights = defaultdict[Hashable, float]


def _top(weights: Mapping[Hashable, float], n: int) -> list[tuple[Hashable, float]]:
    """The ``n`` heaviest, ties in insertion order (what ``Counter.most_common(n)`` does)."""
    return heapq.nlargest(n, weights.items(), key=itemgetter(1))


__all__ = [
    "REFERENCES",
    "ReferenceCovisitation",
    "ReferencePopularity",
    "SequentialRules",
    "SessionKNN",
]


class _Reference(Recommender):
    """Counts views and keeps each user's last ``memory`` pages for ``_learn``."""

    memory = 1

    def __init__(self) -> None:
        self.n_events_learned = 0
        self.popularity: Counter[Hashable] = Counter()
        self._recent: defaultdict[Hashable, deque[Hashable]] = defaultdict(
            lambda: deque(maxlen=self.memory)
        )

    @property
    def n_items(self) -> int:
        return len(self.popularity)

    def user_history(self, user: Hashable) -> Sequence[Hashable]:
        return list(self._recent.get(user, ()))

    def learn_one(
        self,
        user: Hashable,
        item: Hashable,
        y: Reward | None = None,
        x: dict[str, Any] | None = None,
    ) -> None:
        recent = self._recent[user]
        self._learn(user, item, recent)
        recent.append(item)
        self.popularity[item] += 1
        self.n_events_learned += 1

    def _learn(self, user: Hashable, item: Hashable, recent: deque[Hashable]) -> None:
        """Learn ``user`` -> ``item`` given their pages before it (``recent``, newest last)."""

    def _ranked(
        self, scores: Mapping[Hashable, float], k: int, exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        """The top ``k`` of ``scores`` not excluded, then the most viewed pages (score 0)."""
        out = [(q, float(s)) for q, s in _top(scores, k + len(exclude)) if q not in exclude]
        out = out[:k]
        if len(out) < k:
            chosen = {q for q, _ in out}
            for q, _c in self.popularity.most_common(k + len(exclude) + len(out)):
                if q not in exclude and q not in chosen:
                    out.append((q, 0.0))
                    if len(out) == k:
                        break
        return out


class ReferencePopularity(_Reference):
    """Most viewed pages so far (no decay).

    Examples
    --------
    >>> model = ReferencePopularity()
    >>> for user, page in [("a", "p1"), ("b", "p2"), ("c", "p2"), ("a", "p3")]:
    ...     model.learn_one(user, page)
    >>> model.recommend("a", k=2, exclude={"p1", "p3"})
    [('p2', 2.0)]
    """

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        return self._ranked(self.popularity, k, exclude)


class ReferenceCovisitation(_Reference):
    """``covisit_w3``: successors of the user's last ``window`` pages, weighted 1/position.

    Parameters
    ----------
    window
        Pages of the history whose successors are counted and followed.
    successors
        Successors followed per page.

    Examples
    --------
    >>> model = ReferenceCovisitation()
    >>> for user, page in [("a", "p1"), ("a", "p2"), ("b", "p1"), ("b", "p3"), ("c", "p4")]:
    ...     model.learn_one(user, page)
    >>> [p for p, _ in model.recommend("new", k=3, history=["p1"], exclude={"p1"})]
    ['p2', 'p3', 'p4']
    """

    def __init__(self, window: int = 3, successors: int = 50) -> None:
        self.window = window
        self.successors = successors
        self.memory = window
        super().__init__()
        self.next: defaultdict[Hashable, Counter[Hashable]] = defaultdict(Counter)

    def _learn(self, user: Hashable, item: Hashable, recent: deque[Hashable]) -> None:
        for page in recent:
            self.next[page][item] += 1

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        scores: Weights = defaultdict(float)
        for w, page in enumerate(islice(reversed(history), self.window)):
            followers = self.next.get(page)
            if followers:
                for q, c in followers.most_common(self.successors):
                    scores[q] += c / (w + 1)
        return self._ranked(scores, k, exclude)


class SequentialRules(_Reference):
    """``sr``: (earlier -> later) pairs within ``steps`` weighted 1/gap; follow the last page.

    Parameters
    ----------
    steps
        Largest gap (in the user's pages) of a rule.
    candidates
        Rules of the last page considered.

    Examples
    --------
    >>> model = SequentialRules()
    >>> for page in ["p1", "p2", "p3"]:
    ...     model.learn_one("a", page)
    >>> model.recommend("new", k=2, history=["p1"], exclude={"p1"})  # gap 1, then gap 2
    [('p2', 1.0), ('p3', 0.5)]
    """

    def __init__(self, steps: int = 10, candidates: int = 60) -> None:
        self.steps = steps
        self.candidates = candidates
        self.memory = steps
        super().__init__()
        self.rules: defaultdict[Hashable, Weights] = defaultdict(lambda: defaultdict(float))

    def _learn(self, user: Hashable, item: Hashable, recent: deque[Hashable]) -> None:
        for gap, page in enumerate(reversed(recent), 1):
            self.rules[page][item] += 1.0 / gap

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        scores: Weights = defaultdict(float)
        rules = self.rules.get(history[-1]) if history else None
        if rules:
            for q, c in _top(rules, self.candidates):
                scores[q] += c
        return self._ranked(scores, k, exclude)


class SessionKNN(_Reference):
    """``vsknn``: the user's last ``session_len`` pages as a session, scored by neighbours.

    A neighbour is one of the ``sample`` most recently active users among the last
    ``last_users_per_item`` viewers of a session page; its similarity is the sum of the
    session's position weights (1/(distance from the newest page + 1)) of its own last
    ``session_len`` pages; the ``neighbours`` most similar add their similarity to each of
    their pages.

    Examples
    --------
    >>> model = SessionKNN()
    >>> for user, page in [("a", "p1"), ("a", "p2"), ("b", "p9"), ("b", "p1"), ("c", "p3")]:
    ...     model.learn_one(user, page)
    >>> [p for p, _ in model.recommend("new", k=3, history=["p1"], exclude={"p1"})]
    ['p9', 'p2', 'p3']
    """

    def __init__(
        self,
        session_len: int = 10,
        sample: int = 300,
        neighbours: int = 100,
        last_users_per_item: int = 200,
    ) -> None:
        self.session_len = session_len
        self.sample = sample
        self.neighbours = neighbours
        self.last_users_per_item = last_users_per_item
        self.memory = session_len
        super().__init__()
        self.viewers: defaultdict[Hashable, deque[Hashable]] = defaultdict(
            lambda: deque(maxlen=self.last_users_per_item)
        )
        self.last_seen: dict[Hashable, int] = {}

    def _learn(self, user: Hashable, item: Hashable, recent: deque[Hashable]) -> None:
        viewers = self.viewers[item]
        if user in viewers:
            viewers.remove(user)
        viewers.append(user)
        self.last_seen[user] = self.n_events_learned + 1

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        session = list(history)[-self.session_len :]
        n = len(session)
        weight = {page: 1.0 / (n - pos + 1) for pos, page in enumerate(session, 1)}
        pool: set[Hashable] = set()
        for page in session:
            pool.update(self.viewers.get(page, ()))
        pool.discard(user)
        cands: Collection[Hashable] = pool
        if len(pool) > self.sample:  # the most recently active
            cands = sorted(pool, key=lambda v: self.last_seen.get(v, 0), reverse=True)
            cands = cands[: self.sample]
        sims = []
        for v in cands:
            s = sum(weight.get(page, 0.0) for page in self._recent[v])
            if s > 0:
                sims.append((s, v))
        sims.sort(reverse=True)
        scores: Weights = defaultdict(float)
        for s, v in sims[: self.neighbours]:
            for page in self._recent[v]:
                scores[page] += s
        return self._ranked(scores, k, exclude)


#: The references by the names the benches print.
REFERENCES: dict[str, type[Recommender]] = {
    "popularity": ReferencePopularity,
    "covisit_w3": ReferenceCovisitation,
    "sr": SequentialRules,
    "vsknn": SessionKNN,
}
