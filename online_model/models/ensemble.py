"""The ensemble: co-visitation candidates and session-neighbour candidates, mixed by a
weight learned online on hit@10 itself.

Two candidate generators learn every event:

* the default :class:`~online_model.models.covisit.Covisitation` (transitions from the
  user's recent pages, mixed with trending popularity);
* session neighbours in the V-SKNN spirit (Ludewig & Jannach 2018): each user's last
  ``session_len`` distinct pages is their session; a history's neighbours are the most
  recently active of the last ``last_viewers`` viewers of its pages, similar by the
  position weights (``1 / (age + 1)``) of the pages they share with it; the
  ``neighbours`` most similar vote for their own pages with their similarity.

Serving ranks ``(1 - w) · covisit(p) + w · neighbours(p)``, both normalised to sum to 1
over their candidates. ``w`` is the ranker: it is chosen from :data:`GRID` by what the
user viewed next. Every ``judge_every``-th event is judged before it is learned: each
grid weight ranks the candidates of the user's recent pages and scores a hit if the
viewed page is in its top 10. Decayed hits per weight (``rate`` per judged event) decide:
a weight above 0 is served only after ``MIN_EVIDENCE`` judged events and a gain over 0
of ``MIN_GAIN`` hits and ``Z_GAIN`` standard deviations of a sign test on the events
where the two disagree (the rule of :class:`~online_model.models.hybrid.Hybrid`). At
``w = 0`` the model serves exactly what ``covisit`` serves, at its cost.

Measured against ``covisit`` and the references in docs/models.md ("Ensembles").
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Collection, Hashable, Sequence
from operator import itemgetter
from typing import Any, ClassVar

import numpy as np

from online_model.base import Recommender, Reward
from online_model.errors import ModelError
from online_model.models.covisit import Covisitation
from online_model.models.hybrid_delta import recent_lists, recent_rows
from online_model.models.judged_weight import (
    GRID,
    choose_weight,
    hits_by_weight,
)
from online_model.state import ModelState, id_table, stores_state


@stores_state
class Ensemble(Recommender):
    """Co-visitation and session-neighbour candidates, ranked by a weight judged on hit@10.

    Parameters
    ----------
    session_len
        Distinct recent pages per user that form their session (and a history's).
    last_viewers
        Most recent distinct viewers kept per page.
    sample
        Most recently active candidate neighbours compared with a history.
    neighbours
        Most similar neighbours that vote.
    n_candidates
        Candidates taken from each generator when mixing.
    judge_every
        Judge every this many events (the ranker's cost on learning).
    rate
        Decay of the judged hits per judged event.
    max_users
        Users whose sessions are kept (least recently active evicted first).
    seed
        Unused (deterministic); kept for a uniform constructor.

    Examples
    --------
    >>> model = Ensemble()
    >>> for user in ["u1", "u2", "u3"]:
    ...     for page in ["home", "sports", "football"]:
    ...         model.learn_one(user, page)
    >>> [page for page, _ in model.recommend("new", k=2, history=["home", "sports"])]
    ['football', 'home']
    """

    STORED_AS: ClassVar[str] = "online_model.ensemble.Ensemble"

    def __init__(
        self,
        session_len: int = 10,
        last_viewers: int = 100,
        sample: int = 300,
        neighbours: int = 100,
        n_candidates: int = 50,
        judge_every: int = 4,
        rate: float = 0.001,
        max_users: int = 100_000,
        seed: int | None = None,
    ) -> None:
        if judge_every < 1:
            raise ModelError(f"judge_every must be >= 1, got {judge_every}")
        self.session_len = session_len
        self.last_viewers = last_viewers
        self.sample = sample
        self.neighbours = neighbours
        self.n_candidates = n_candidates
        self.judge_every = judge_every
        self.rate = rate
        self.max_users = max_users
        self.seed = seed
        self.covisit = Covisitation()
        self.n_events_learned = 0
        self._sessions: OrderedDict[Hashable, list[Hashable]] = OrderedDict()
        self._viewers: dict[Hashable, list[Hashable]] = {}
        self._active: dict[Hashable, int] = {}
        self._hits = np.zeros(len(GRID))
        self._disagree = np.zeros(len(GRID))
        self._judged = 0.0
        self.weight = 0.0

    @property
    def n_items(self) -> int:
        return self.covisit.n_items

    def user_history(self, user: Hashable) -> Sequence[Hashable]:
        return self.covisit.user_history(user)

    # -- learning ---------------------------------------------------------------------------
    def learn_one(
        self,
        user: Hashable,
        item: Hashable,
        y: Reward | None = None,
        x: dict[str, Any] | None = None,
    ) -> None:
        self.n_events_learned += 1
        session = self._sessions.get(user)
        if session and self.n_events_learned % self.judge_every == 0:
            self._judge(user, session, item)
        self.covisit.learn_one(user, item, y, x)
        if session is None:
            session = self._sessions[user] = []
            if len(self._sessions) > self.max_users:
                gone, _ = self._sessions.popitem(last=False)
                self._active.pop(gone, None)
        else:
            self._sessions.move_to_end(user)
            if item in session:
                session.remove(item)
        session.append(item)
        if len(session) > self.session_len:
            del session[0]
        self._active[user] = self.n_events_learned
        viewers = self._viewers.get(item)
        if viewers is None:
            viewers = self._viewers[item] = []
        elif user in viewers:
            viewers.remove(user)
        viewers.append(user)
        if len(viewers) > self.last_viewers:
            del viewers[0]

    def _judge(self, user: Hashable, session: list[Hashable], item: Hashable) -> None:
        """Rank the candidates of ``session`` with every grid weight; did ``item`` make
        the top ``JUDGE_K``?"""
        if item in session:
            return  # a repeat: serving excludes it, every weight misses
        cands, on, nb = self._mixable(user, session, set(session))
        hits = np.zeros(len(GRID))
        if item in cands and len(cands) > 0:
            hits = hits_by_weight(on, nb, cands.index(item))
        decay = 1.0 - self.rate
        self._hits = self._hits * decay + hits
        self._disagree = self._disagree * decay + (hits != hits[0])
        self._judged = self._judged * decay + 1.0
        self.weight = self._choose()

    def _choose(self) -> float:
        return choose_weight(self._hits, self._disagree, self._judged, 0.0)

    # -- the session-neighbour generator --------------------------------------------------------
    def _neighbour_scores(
        self, user: Hashable, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> dict[Hashable, float]:
        """Session-neighbour votes for pages not excluded, normalised to sum to 1."""
        weight: dict[Hashable, float] = {}
        for page in reversed(history):
            if page not in weight:
                weight[page] = 1.0 / (len(weight) + 1)
                if len(weight) >= self.session_len:
                    break
        pool: set[Hashable] = set()
        viewers = self._viewers
        for page in weight:
            pool.update(viewers.get(page, ()))
        pool.discard(user)
        cands: Collection[Hashable] = pool
        if len(pool) > self.sample:
            cands = heapq.nlargest(self.sample, pool, key=self._active.__getitem__)
        sessions = self._sessions
        get = weight.get
        sims = []
        for v in cands:
            s = sum(get(page, 0.0) for page in sessions[v])
            if s > 0:
                sims.append((s, v))
        scores: dict[Hashable, float] = {}
        for s, v in heapq.nlargest(self.neighbours, sims, key=itemgetter(0)):
            for page in sessions[v]:
                if page not in exclude:
                    scores[page] = scores.get(page, 0.0) + s
        total = sum(scores.values())
        return {page: s / total for page, s in scores.items()} if total else {}

    def _mixable(
        self, user: Hashable, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
        """Both generators' top ``n_candidates``: pages (covisit's order first) and each
        generator's normalised score of every page (0 where it has none)."""
        n = self.n_candidates
        online = self.covisit._recommend(user, n, history, exclude)
        votes = self._neighbour_scores(user, history, exclude)
        extra = heapq.nlargest(n, votes.items(), key=itemgetter(1))
        total = sum(p for _, p in online) or 1.0
        cands = [page for page, _ in online]
        on = [p / total for _, p in online]
        known = set(cands)
        for page, _ in extra:
            if page not in known:
                cands.append(page)
                on.append(0.0)
        nb = np.fromiter((votes.get(page, 0.0) for page in cands), float, len(cands))
        return cands, np.asarray(on, dtype=float), nb

    # -- serving ----------------------------------------------------------------------------
    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        w = self.weight
        if not w or not history:
            return self.covisit._recommend(user, k, history, exclude)
        cands, on, nb = self._mixable(user, history, exclude)
        mixed = (1.0 - w) * on + w * nb
        ranked = sorted(zip(cands, mixed.tolist(), strict=True), key=itemgetter(1), reverse=True)
        if len(ranked) < k:  # popularity fills, as covisit would
            have = {page for page, _ in ranked}
            for page, _ in self.covisit._recommend(user, k + len(have), history, exclude):
                if page not in have:
                    ranked.append((page, 0.0))
        return ranked[:k]

    # -- forgetting -------------------------------------------------------------------------
    def forget(self, pages: Collection[Hashable]) -> int:
        """Drop ``pages`` from both generators; how many the model knew."""
        known = self.covisit.forget(pages)
        gone = set(pages)
        for page in gone:
            self._viewers.pop(page, None)
        for user, session in self._sessions.items():
            if gone.intersection(session):
                self._sessions[user] = [p for p in session if p not in gone]
        return known

    # -- state ------------------------------------------------------------------------------
    def state_arrays(self) -> ModelState:
        """``covisit``'s state nested, the sessions and the viewers as CSR rows, the
        activity clock per session and the ranker's evidence."""
        state = ModelState(
            values={
                "n_events_learned": self.n_events_learned,
                "weight": self.weight,
                "hits": self._hits.tolist(),
                "disagree": self._disagree.tolist(),
                "judged": self._judged,
            }
        )
        state.nest("covisit", self.covisit.state_arrays())
        users = list(self._sessions)
        state.nest("sessions", recent_rows(id_table(users, "user"), list(self._sessions.values())))
        state.arrays["active"] = np.fromiter((self._active[u] for u in users), np.int64, len(users))
        state.nest(
            "viewers",
            recent_rows(id_table(list(self._viewers), "page"), list(self._viewers.values())),
        )
        return state

    @classmethod
    def from_state(cls, params: dict[str, Any], state: ModelState) -> Ensemble:
        """Inverse of :meth:`state_arrays`."""
        model = cls(**params)
        model.covisit = Covisitation.from_state(model.covisit._get_params(), state.sub("covisit"))
        values = state.values
        model.n_events_learned = int(values["n_events_learned"])
        model.weight = float(values["weight"])
        model._judged = float(values["judged"])
        for name in ("hits", "disagree"):
            counts = np.asarray(values[name], dtype=np.float64)
            if counts.shape != (len(GRID),):
                raise ModelError(f"ensemble state: {name} of shape {counts.shape}")
            setattr(model, f"_{name}", counts)
        sessions = state.sub("sessions")
        model._sessions = recent_lists(sessions, "sessions")  # type: ignore[assignment]
        active = state.array("active", np.int64)
        if len(active) != len(model._sessions):
            raise ModelError("ensemble state: activity and sessions differ in length")
        model._active = dict(zip(model._sessions, active.tolist(), strict=True))
        model._viewers = dict(recent_lists(state.sub("viewers"), "viewers"))  # type: ignore[arg-type]
        return model
