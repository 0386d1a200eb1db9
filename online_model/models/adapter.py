"""Serve any River ranker (``learn_one``/``predict_one``) through the Recommender API."""

from __future__ import annotations

import heapq
import logging
from collections.abc import Collection, Hashable, Sequence
from operator import itemgetter
from typing import Any, ClassVar

from online_model.base import Recommender, Reward
from online_model.models.popularity import DecayedPopularity

logger = logging.getLogger(__name__)


class RiverRanker(Recommender):
    """Adapter giving a River ``reco`` ranker a ``recommend`` method.

    The wrapped model learns every view as ``y=implicit_rating``. ``recommend`` scores
    every known item with ``predict_one`` (O(items) Python calls: fine for experiments,
    too slow for the scorer's hot path; built-in models are vectorised). Users the wrapped
    model cannot know (no own state) are served decayed popularity.

    Parameters
    ----------
    model
        A River estimator with ``learn_one(user, item, y)`` and ``predict_one(user, item)``.
    implicit_rating
        Target used for each view.

    Examples
    --------
    >>> from river import reco
    >>> model = RiverRanker(reco.Baseline())
    >>> for user, page in [("a", "x"), ("b", "x"), ("a", "y")]:
    ...     model.learn_one(user, page)
    >>> [page for page, _ in model.recommend("a", k=1, exclude={"y"})]
    ['x']
    """

    #: The name files record for this class (:mod:`online_model.state.registration`).
    STORED_AS: ClassVar[str] = "online_model.adapter.RiverRanker"

    def __init__(self, model: Any, implicit_rating: float = 1.0) -> None:
        self.model = model
        self.implicit_rating = implicit_rating
        self.n_events_learned = 0
        self._model = model.clone()
        self._items: dict[Hashable, None] = {}
        self._users: set[Hashable] = set()
        self._popularity = DecayedPopularity()

    @property
    def n_items(self) -> int:
        return len(self._items)

    def learn_one(
        self,
        user: Hashable,
        item: Hashable,
        y: Reward | None = None,
        x: dict[str, Any] | None = None,
    ) -> None:
        self._model.learn_one(user, item, self.implicit_rating if y is None else y)
        self._items[item] = None
        self._users.add(user)
        self._popularity.learn_one(user, item, x=x)
        self.n_events_learned += 1

    def score_items(
        self, user: Hashable, items: Sequence[Hashable], history: Sequence[Hashable] = ()
    ) -> list[float]:
        return [float(self._model.predict_one(user, i)) for i in items]

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        if user not in self._users:
            return self._popularity._recommend(user, k, history, exclude)
        predict = self._model.predict_one
        scored = ((i, float(predict(user, i))) for i in self._items if i not in exclude)
        return heapq.nlargest(k, scored, key=itemgetter(1))
