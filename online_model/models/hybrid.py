"""The hybrid model: a periodically refit batch layer mixed with the online ``covisit``."""

from __future__ import annotations

import itertools
import logging
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Collection, Hashable, Sequence
from operator import itemgetter
from typing import Any, ClassVar

import numpy as np

from online_model.base import Recommender, Reward
from online_model.errors import ModelError
from online_model.models.covisit import Covisitation
from online_model.models.hybrid_delta import apply_recent, recent_lists, recent_rows
from online_model.models.itemitem import (
    HISTORY_LENGTH,
    L2,
    MAX_PAGES,
    N_NEIGHBOURS,
    Distribution,
    ItemItem,
    fit_item_item,
)
from online_model.models.judged_weight import GRID, JUDGE_K, choose_weight, hits_by_weight
from online_model.state import (
    ModelState,
    id_table,
    stores_state,
    tracks_changes,
)

logger = logging.getLogger(__name__)

#: Lower bounds of the history-length buckets (distinct pages) that each learn a ``w``.
_BUCKETS = (1, 2, 4, 8, 16, 32)


def _bucket(n_distinct: int) -> int:
    """The bucket of a history of ``n_distinct`` distinct pages."""
    return max(bisect_right(_BUCKETS, n_distinct) - 1, 0)


@tracks_changes
@stores_state
class Hybrid(Recommender):
    """``(1 - w) · P_online(p | history) + w · P_batch(p | history)``, ``w`` learned online.

    The **online layer** is today's default, :class:`~online_model.models.covisit.Covisitation`
    with its default parameters: it learns every event it is given, one at a time. The
    **batch layer** is an :class:`~online_model.models.itemitem.ItemItem` model (EASE over each
    user's last ``history_length`` distinct pages, i.e. whole histories for most users)
    fit by :func:`~online_model.models.itemitem.fit_item_item` on a prefix of the log, by a batch
    job or by :meth:`fit_batch_layer`, and swapped in with :meth:`set_batch_layer`. It
    scores a history by summing the item-item weights of its last ``batch_recent``
    distinct pages (the one of age ``a`` weighted ``batch_recency ** a``), normalised to
    a distribution over pages.

    The mix weight ``w`` is learned on the ranking metric itself, one ``w`` per bucket of
    history length (1, 2-3, 4-7, 8-15, 16-31, 32+ distinct pages) chosen from ``GRID``:
    before the online layer learns an event, the mixed list is built from the user's
    previous pages as serving builds it (both layers' candidates, the recent pages
    excluded) and, for every weight of the grid, the page the user actually viewed is
    judged a hit if it would have been in the top ``JUDGE_K``. Each bucket keeps decayed
    hit counts per grid weight (each judged event multiplies them by ``1 - batch_rate``)
    and serves the weight with the most hits, the smallest on ties; it leaves 0 only
    once it judged ``MIN_EVIDENCE`` (decayed) events and the gain over 0 is at least
    ``MIN_GAIN`` hits and ``Z_GAIN`` standard deviations of a sign test on the events
    where that weight and 0 disagree. Until then a bucket serves ``batch_weight``.
    Repeats of the user's recent pages (serving excludes them) are not judged.

    Events and layers: each statistic has one owner and counts each event once. The
    transition and popularity statistics (and ``w``) belong to the online layer, which
    learns every event after its own start exactly once (the trainer's offsets guarantee
    it across restarts). The item-item weights belong to the batch layer, which covers
    the log's first ``batch_layer.n_events`` events (``batch_layer.position``: where they
    end, e.g. Kafka offsets). A swap replaces the item-item weights only: nothing the
    online layer learned is touched or relearned, and no item-item weight is learned
    online, so no event is counted twice in a statistic and none is left out of one.

    With no batch layer the model is exactly ``covisit``: same lists, same scores.

    Snapshots: full ones hold both layers; deltas (:meth:`state_delta`) hold the online
    layer's changes and name the batch layer they were learned with, and a swap ends the
    chain (the next snapshot is a full one, carrying the new layer).

    Parameters
    ----------
    batch_weight
        ``w`` served until a bucket has the evidence to choose from ``GRID`` (0: covisit's
        lists until then).
    batch_rate
        Decay of the hit counts per judged event of a bucket (they cover ~``1 /
        batch_rate`` events; 0: ``batch_weight`` is served for good, nothing is judged).
    history_length, max_pages, l2, n_neighbours
        How :meth:`fit_batch_layer` fits the batch layer (see :mod:`online_model.models.itemitem`).
    batch_recent, batch_recency
        The batch layer scores the last ``batch_recent`` distinct pages of the history,
        the page of age ``a`` (0: the newest) weighted ``batch_recency ** a``.
    retrain_every
        Events between refits of the batch layer in ``streamrec evaluate`` when
        ``--retrain-every`` is not given: the cadence the measurements assume.
    oversample
        Candidates taken from each layer, as a multiple of ``k``.
    max_users
        Users whose recent pages are kept for learning ``w`` (LRU).
    seed
        Unused (the model is deterministic); kept for a uniform constructor.

    Examples
    --------
    >>> model = Hybrid()
    >>> events = [(u, p, t) for t, (u, p) in enumerate(
    ...     [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x"), ("c", "z")])]
    >>> for user, page, ts in events:
    ...     model.learn_one(user, page, x={"ts": ts})
    >>> model.set_batch_layer(model.fit_batch_layer(events))
    >>> model.batch_layer.n_events, model.n_events_learned
    (6, 6)
    >>> [page for page, _ in model.recommend("d", k=2, history=["x"])]
    ['y', 'z']
    """

    #: The name files record for this class (:mod:`online_model.state.registration`).
    STORED_AS: ClassVar[str] = "online_model.hybrid.Hybrid"

    def __init__(
        self,
        batch_weight: float = 0.0,
        batch_rate: float = 0.001,
        history_length: int = HISTORY_LENGTH,
        max_pages: int = MAX_PAGES,
        l2: float = L2,
        n_neighbours: int = N_NEIGHBOURS,
        retrain_every: int = 10_000,
        batch_recent: int = 5,
        batch_recency: float = 1.0,
        oversample: int = 3,
        max_users: int = 100_000,
        seed: int | None = None,
    ) -> None:
        self.batch_weight = batch_weight
        self.batch_rate = batch_rate
        self.history_length = history_length
        self.max_pages = max_pages
        self.l2 = l2
        self.n_neighbours = n_neighbours
        self.retrain_every = retrain_every
        self.batch_recent = batch_recent
        self.batch_recency = batch_recency
        if batch_recent < 1:
            raise ModelError(f"batch_recent must be at least 1, got {batch_recent}")
        self.oversample = oversample
        self.max_users = max_users
        self.seed = seed
        self.online = Covisitation(max_users=max_users)
        self.batch_layer: ItemItem | None = None
        if not 0.0 <= batch_weight <= 1.0:
            raise ModelError(f"batch_weight must be in [0, 1], got {batch_weight}")
        # One ``w`` per bucket of history length (distinct pages, see _bucket): short
        # sessions and long histories want different shares of the batch layer. Each
        # bucket serves ``_prior`` until it has evidence, then the best weight of GRID.
        n = len(_BUCKETS)
        self._prior = [float(batch_weight)] * n
        self._weights = list(self._prior)
        self._hits = np.zeros((n, len(GRID)))  # decayed hits per (bucket, grid weight)
        self._disagree = np.zeros((n, len(GRID)))  # decayed events where w and 0 differ
        self._judged = np.zeros(n)  # decayed judged events per bucket
        # Each user's last distinct pages (up to ``_keep``), oldest first: what the batch
        # layer reads when ``w`` is learned (serving passes the history instead).
        self._recent: OrderedDict[Hashable, list[Hashable]] = OrderedDict()

    @property
    def n_events_learned(self) -> int:  # type: ignore[override]
        """Events the online layer learned."""
        return self.online.n_events_learned

    @property
    def n_items(self) -> int:
        return self.online.n_items

    @property
    def weight(self) -> float:
        """The learned batch share ``w`` of the longest histories (0 with no batch layer)."""
        return self._weights[-1] if self.batch_layer is not None else 0.0

    @property
    def weights(self) -> list[float]:
        """The learned ``w`` per history-length bucket (see ``_BUCKETS``), shortest first."""
        return list(self._weights) if self.batch_layer is not None else [0.0] * len(_BUCKETS)

    @property
    def _keep(self) -> int:
        return max(self.batch_recent, _BUCKETS[-1])

    def user_history(self, user: Hashable) -> Sequence[Hashable]:
        return self.online.user_history(user)

    # -- the batch layer ---------------------------------------------------------------------
    def fit_batch_layer(self, events: Sequence[Sequence[Any]], position: Any = None) -> ItemItem:
        """A batch layer fit on ``events`` (the log's first events, in time order)."""
        return fit_item_item(
            events,
            history_length=self.history_length,
            max_pages=self.max_pages,
            l2=self.l2,
            n_neighbours=self.n_neighbours,
            position=position,
        )

    def set_batch_layer(self, layer: ItemItem) -> None:
        """Serve ``layer`` from now on; the online layer and ``w`` carry on unchanged.

        Refuses a layer that covers fewer events than the one it replaces (an older fit)
        or more events than the online layer has learned (a fit of a different log).
        """
        current = self.batch_layer
        if current is not None and layer.n_events < current.n_events:
            raise ModelError(
                f"batch layer covers {layer.n_events} events, fewer than the "
                f"{current.n_events} of the layer it would replace"
            )
        if layer.n_events > self.n_events_learned:
            raise ModelError(
                f"batch layer covers {layer.n_events} events; the online layer has only "
                f"learned {self.n_events_learned}"
            )
        self.batch_layer = layer

    # -- learning -------------------------------------------------------------------------------
    def learn_one(
        self,
        user: Hashable,
        item: Hashable,
        y: Reward | None = None,
        x: dict[str, Any] | None = None,
    ) -> None:
        recent = self._recent.get(user)
        if recent is None:
            recent = self._recent[user] = []
            if len(self._recent) > self.max_users:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(user)
            if self.batch_layer is not None and self.batch_rate:
                self._judge(user, recent, item)
        dirty = self._dirty_recent
        if dirty is not None:
            dirty.add(user)
        self.online.learn_one(user, item, y, x)
        if item in recent:
            recent.remove(item)
        recent.append(item)
        if len(recent) > self._keep:
            del recent[0]

    def _batch_distribution(self, history: Sequence[Hashable]) -> Distribution | None:
        layer = self.batch_layer
        if layer is None:
            return None
        return layer.distribution(history, self.batch_recent, self.batch_recency)

    # -- delta snapshots (online_model.models.hybrid_delta) --------------------------------------
    # Change tracking is off until mark_published (class defaults: a model built by
    # from_state or __init__ starts untracked).
    _dirty_recent: set[Hashable] | None = None
    _published_layer: ItemItem | None = None

    def mark_published(self) -> None:
        """The state as it is now was published: track changes from here on."""
        self.online.mark_published()
        self._dirty_recent = set()
        self._published_layer = self.batch_layer

    def state_delta(self) -> ModelState | None:
        """The online layer's delta, the weights, the recent pages of the users active since
        :meth:`mark_published` and a reference to the batch layer (``batch_ref``); None
        when only a full state will do: not tracking, a new batch layer since, or a change
        of the online layer that touched everything."""
        dirty = self._dirty_recent
        if dirty is None or self.batch_layer is not self._published_layer:
            return None
        online = self.online.state_delta()
        if online is None:
            return None
        recent = self._recent
        n_active = sum(1 for user in dirty if user in recent)
        users = list(itertools.islice(reversed(recent), n_active))[::-1]
        state = recent_rows(id_table(users, "user"), [recent[user] for user in users])
        state.values = {
            **self._weight_values(),
            "has_batch": self.batch_layer is not None,
            "n_users": len(recent),
        }
        if self.batch_layer is not None:
            layer = self.batch_layer
            state.values["batch_ref"] = {"n_events": layer.n_events, "position": layer.position}
        state.nest("online", online)
        return state

    @staticmethod
    def _batch_ref(values: dict[str, Any]) -> dict[str, Any]:
        return {"n_events": values["n_events"], "position": values["position"]}

    @staticmethod
    def apply_state_delta(base: ModelState, delta: ModelState) -> ModelState:
        """:meth:`state_arrays` as it is after ``delta``; ``base`` is not modified. Refused
        (:class:`ModelError`) when ``base`` holds another batch layer than the delta names."""
        values = dict(delta.values)
        n_users = int(values.pop("n_users"))
        ref = values.pop("batch_ref", None)
        values.pop("online", None)
        has_batch = bool(values.get("has_batch"))
        if has_batch != bool(base.values.get("has_batch")):
            raise ModelError("hybrid delta: the base holds a batch layer where the delta has none")
        batch = base.sub("batch") if has_batch else None
        if batch is not None and ref != Hybrid._batch_ref(batch.values):
            raise ModelError("hybrid delta: it was learned with another batch layer")
        state = apply_recent(base, delta, n_users)
        state.values = values
        state.nest(
            "online", Covisitation.apply_state_delta(base.sub("online"), delta.sub("online"))
        )
        if batch is not None:
            state.nest("batch", batch)
        return state

    def _judge(self, user: Hashable, recent: list[Hashable], item: Hashable) -> None:
        """Judge every weight of GRID on ``item``, scored before the online layer learns it:
        would it have been in the top ``JUDGE_K`` of the list mixed with that weight?"""
        if item in recent:
            return  # a repeat of a recent page: serving excludes it, every weight misses
        batch = self._batch_distribution(recent)
        if batch is None:
            return  # nothing to compare: serving would be the online layer alone
        bucket = _bucket(len(recent))
        hits = np.zeros(len(GRID))  # a page neither layer offers: every weight misses
        # The candidates serving takes, their online scores once.
        online_recs, extra = self._candidates(user, JUDGE_K, recent, set(recent), batch)
        cands = [page for page, _ in online_recs]
        if item in cands or item in extra:
            scores = [p for _, p in online_recs]
            if extra:
                cands += extra
                scores += self.online.score_items(user, extra, recent)
            get = batch.get
            ba = np.fromiter((get(page) for page in cands), float, len(cands))
            hits = hits_by_weight(np.asarray(scores), ba, cands.index(item))
        decay = 1.0 - self.batch_rate
        self._hits[bucket] *= decay
        self._hits[bucket] += hits
        self._disagree[bucket] *= decay
        self._disagree[bucket] += hits != hits[0]
        self._judged[bucket] = self._judged[bucket] * decay + 1.0
        self._weights[bucket] = self._choose(bucket)

    def _choose(self, bucket: int) -> float:
        """The weight ``bucket`` serves given its evidence (see the class docstring)."""
        return choose_weight(
            self._hits[bucket], self._disagree[bucket], self._judged[bucket], self._prior[bucket]
        )

    def _weight_values(self) -> dict[str, Any]:
        """The learned weights and their evidence, as plain values."""
        return {
            "weights": list(self._weights),
            "prior": list(self._prior),
            "hits": self._hits.tolist(),
            "disagree": self._disagree.tolist(),
            "judged": self._judged.tolist(),
        }

    # -- serving ----------------------------------------------------------------------------------
    def _candidates(
        self,
        user: Hashable,
        k: int,
        history: Sequence[Hashable],
        exclude: Collection[Hashable],
        batch: Distribution,
    ) -> tuple[list[tuple[Hashable, float]], list[Hashable]]:
        """What a mixed top ``k`` is drawn from: the online layer's top ``k * oversample``
        with their scores, and the batch layer's top as many pages that the online ones
        lack (to be scored by the online layer)."""
        n = k * self.oversample
        online_recs = self.online._recommend(user, n, history, exclude)
        known = {page for page, _ in online_recs}
        return online_recs, [page for page, _ in batch.top(n, exclude) if page not in known]

    def _weight_for(self, history: Sequence[Hashable]) -> float:
        return self._weights[_bucket(len(set(history[-self._keep :])))]

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        online = self.online
        w = self._weight_for(history)
        batch = self._batch_distribution(history) if w else None
        if batch is None:
            return online._recommend(user, k, history, exclude)  # w = 0: covisit alone
        online_recs, extra = self._candidates(user, k, history, exclude, batch)
        scores = {item: (1.0 - w) * p for item, p in online_recs}
        if extra:
            for item, p in zip(extra, online.score_items(user, extra, history), strict=True):
                scores[item] = (1.0 - w) * p
        get = batch.get
        ranked = [(item, s + w * get(item)) for item, s in scores.items()]
        ranked.sort(key=itemgetter(1), reverse=True)  # stable: online order breaks ties
        return ranked[:k]

    def score_items(
        self, user: Hashable, items: Sequence[Hashable], history: Sequence[Hashable] = ()
    ) -> list[float]:
        online = self.online.score_items(user, items, history)
        w = self._weight_for(history)
        batch = self._batch_distribution(history) if w else None
        if batch is None:
            return online
        return [(1.0 - w) * p + w * batch.get(i) for i, p in zip(items, online, strict=True)]

    # -- pickle-free state (online_model.state) ------------------------------------
    def state_arrays(self) -> ModelState:
        """The online layer under ``online``, the batch layer (if any) under ``batch``,
        ``w``, and each user's recent pages as CSR rows of the ``recent.pages`` table."""
        state = recent_rows(id_table(self._recent, "user"), list(self._recent.values()))
        state.values = {**self._weight_values(), "has_batch": self.batch_layer is not None}
        state.nest("online", self.online.state_arrays())
        if self.batch_layer is not None:
            state.nest("batch", self.batch_layer.state_arrays())
        return state

    def _load_weights(self, values: dict[str, Any]) -> None:
        """The weights and their evidence from :meth:`_weight_values`. Files written before
        the weights were judged on hit@10 hold the ``weights`` learned by likelihood (or,
        older, one ``weight`` for every length): each bucket serves its own until it has
        judged enough events to choose from ``GRID``."""
        n = len(_BUCKETS)
        weights = [float(w) for w in values.get("weights", [values.get("weight")] * n)]
        if len(weights) != n:
            raise ModelError(f"hybrid state: {len(weights)} weights, expected {n}")
        self._weights = weights
        self._prior = [float(w) for w in values.get("prior", weights)]
        shape = (n, len(GRID))
        for name in ("hits", "disagree"):
            counts = np.asarray(values.get(name, np.zeros(shape)), dtype=np.float64)
            if counts.shape != shape:
                raise ModelError(f"hybrid state: {name} of shape {counts.shape}, expected {shape}")
            setattr(self, f"_{name}", counts)
        judged = np.asarray(values.get("judged", np.zeros(n)), dtype=np.float64)
        if judged.shape != (n,) or len(self._prior) != n:
            raise ModelError("hybrid state: judged counts or priors do not match the buckets")
        self._judged = judged

    @classmethod
    def from_state(cls, params: dict[str, Any], state: ModelState) -> Hybrid:
        """Inverse of :meth:`state_arrays`."""
        model = cls(**params)
        model.online = Covisitation.from_state(model.online._get_params(), state.sub("online"))
        if state.values["has_batch"]:
            model.batch_layer = ItemItem.from_state(state.sub("batch"))
        model._load_weights(state.values)
        model._recent = recent_lists(state, "recent")  # type: ignore[assignment]
        return model
