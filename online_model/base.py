"""The recommender interface every streamrec model speaks.

It follows River's API (``learn_one`` / ``predict_one`` / ``rank``) and adds
``recommend``, the vectorised call the scorer makes in its hot path. At serving time a
user is represented by ``history`` (recent page ids read from Redis, newest last), so
``recommend`` must work for users the model never saw.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Collection, Hashable, Iterable, Sequence
from typing import Any

from river import reco
from river.reco.base import Reward

__all__ = ["MAX_HISTORY", "Recommender", "Reward"]

logger = logging.getLogger(__name__)

#: How many of the newest history items ``recommend`` passes on to the model.
MAX_HISTORY = 50


class Recommender(reco.base.Ranker, abc.ABC):
    """Base class of online page recommenders.

    Subclasses implement :meth:`learn_one` and :meth:`_recommend`; this class normalises
    the arguments of :meth:`recommend` and guarantees its contract: at most ``k`` distinct
    items, none of them in ``exclude``, scores sorted descending.

    Every model counts the events it learned in ``n_events_learned`` (the trainer uses it
    to prove nothing is learned twice) and the distinct items it knows in ``n_items``.
    """

    n_events_learned: int

    @abc.abstractmethod
    def learn_one(
        self,
        user: Hashable,
        item: Hashable,
        y: Reward | None = None,
        x: dict[str, Any] | None = None,
    ) -> None:
        """Learn that ``user`` viewed ``item``; ``x`` may carry ``{"ts": epoch_ms}``."""

    @abc.abstractmethod
    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        """Return up to ``k`` (item, score) pairs, best first, none in ``exclude``.

        ``history`` and ``exclude`` may be the caller's own objects: read, never modify."""

    @property
    def n_items(self) -> int:
        """Number of distinct items the model knows."""
        return 0

    def user_history(self, user: Hashable) -> Sequence[Hashable]:
        """Recent items the model remembers for ``user`` (empty when it keeps none)."""
        return ()

    # River types predictions as numbers.Number, which mypy does not relate to float.
    def predict_one(  # type: ignore[override]
        self, user: Hashable, item: Hashable, x: dict[str, Any] | None = None
    ) -> float:
        """Score ``item`` for ``user`` from the history the model remembers for them."""
        return self.score_items(user, [item], self.user_history(user))[0]

    def score_items(
        self, user: Hashable, items: Sequence[Hashable], history: Sequence[Hashable] = ()
    ) -> list[float]:
        """Score given ``items`` for a user represented by ``history`` (0.0 if unknown)."""
        scores = dict(self._recommend(user, max(self.n_items, 1), list(history), ()))
        return [float(scores.get(item, 0.0)) for item in items]

    def rank(
        self, user: Hashable, items: Iterable[Hashable], x: dict[str, Any] | None = None
    ) -> list[Hashable]:
        """Rank ``items`` by decreasing preference of ``user`` (ties keep input order)."""
        items = list(items)
        scores = self.score_items(user, items, self.user_history(user))
        order = sorted(range(len(items)), key=lambda i: -scores[i])
        return [items[i] for i in order]

    def recommend(
        self,
        user: Hashable,
        k: int = 10,
        history: Iterable[Hashable] = (),
        exclude: Iterable[Hashable] = (),
    ) -> list[tuple[Hashable, float]]:
        """Top-``k`` items for ``user`` given their recent ``history`` (newest last).

        Parameters
        ----------
        user
            User id; may be unknown to the model.
        k
            Maximum number of items to return.
        history
            The user's recent page ids, newest last; only the last ``MAX_HISTORY`` are used.
        exclude
            Items that must not be returned.

        Returns
        -------
        list of (item, score)
            At most ``k`` distinct items, scores sorted descending.
        """
        if k <= 0:
            return []
        # The scorer's call (a list, a set) passes through uncopied; ``_recommend`` only
        # reads its arguments.
        if type(history) is list:
            hist = history if len(history) <= MAX_HISTORY else history[-MAX_HISTORY:]
        else:
            hist = list(history)
            if len(hist) > MAX_HISTORY:
                hist = hist[-MAX_HISTORY:]
        excl = exclude if isinstance(exclude, (set, frozenset, dict)) else set(exclude)
        return self._recommend(user, k, hist, excl)
