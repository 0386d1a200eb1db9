"""The co-visitation model: learning transitions online, per-user buffers, candidates.

:class:`Covisitation` learns, per event, the transitions from the user's recent pages
(kept per user, LRU) into a graph of decayed weights, tracks which rows and users
changed (for deltas), and keeps each page's normalised top candidates, which both
serving paths read. Its other concerns live beside it, as functions and classes it
delegates to, each importing only modules below it (never this one):

* :mod:`~online_model.models.covisit.mixture` - the online weight of popularity;
* :mod:`~online_model.models.covisit.scoring` - the dict serving path;
* :mod:`~online_model.models.covisit.frozen` - the numpy serving path of a model that
  stopped learning (bit for bit the dict path);
* :mod:`~online_model.models.covisit.stored` - the graph of a loaded snapshot, served
  from its arrays until it is needed as dicts;
* :mod:`~online_model.models.covisit.state` - the state as arrays, and back;
* :mod:`~online_model.models.covisit.delta` - delta snapshots of the tracked changes;
* :mod:`~online_model.models.covisit.catalog` - forgetting pages, filtered serving;
* :mod:`~online_model.models.covisit.migration` - pickles of earlier releases.

Pickles name this module (``online_model.covisit`` before, mapped here by
``online_model.persist.pickles.MOVED_MODULES``): only :class:`Covisitation` is pickled,
its helpers never are (:meth:`Covisitation.__getstate__` drops them).
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Sequence
from operator import itemgetter
from typing import Any, ClassVar

from online_model.base import Recommender, Reward
from online_model.models.covisit.catalog import drop_pages
from online_model.models.covisit.catalog import recommend_where as recommend_filtered
from online_model.models.covisit.delta import build_delta, delta_size, merge_delta
from online_model.models.covisit.frozen import FrozenView, frozen_view
from online_model.models.covisit.migration import upgrade_state
from online_model.models.covisit.mixture import clamped, update_mixture
from online_model.models.covisit.scoring import mixed_scores, recommend_dicts
from online_model.models.covisit.state import export_state, load_graph
from online_model.models.covisit.stored import STORED_DICTS, StoredGraph
from online_model.models.decay import ForwardDecay
from online_model.models.popularity import DecayedPopularity
from online_model.state import ModelState, stores_state, tracks_changes

logger = logging.getLogger(__name__)


@tracks_changes
@stores_state
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

    #: The name files record for this class (:mod:`online_model.state.registration`).
    STORED_AS: ClassVar[str] = "online_model.covisit.Covisitation"

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
        self._mixture = clamped(backoff)

    @property
    def n_items(self) -> int:
        return self._popularity.n_items

    # Derived serving state, never pickled (instance values shadow these defaults).
    _stored: StoredGraph | None = None
    _frozen: FrozenView | None = None
    _serve_version = -1
    _serve_calls = 0
    # Change tracking for delta snapshots, off until mark_published(): pages whose row
    # of successors changed, users whose buffer changed, and whether a rescale touched
    # every weight (then only a full snapshot will do).
    _dirty_rows: set[Hashable] | None = None
    _dirty_users: set[Hashable] | None = None
    _delta_broken = False
    # The model the mixture weight is learned on, when not this one (trainer shards:
    # see set_mixture_reference). Never stored.
    _mixture_reference: Covisitation | None = None

    def __getstate__(self) -> dict[str, Any]:
        if self._stored is not None:
            self.__getattr__(STORED_DICTS[0])  # build the dicts a pickle holds
        state = {**self.__dict__, "_candidates": {}}  # a cache: rebuilt on demand
        for derived in (
            "_frozen",
            "_serve_version",
            "_serve_calls",
            "_stored",
            "_mixture_reference",
        ):
            state.pop(derived, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        upgrade_state(state)  # a pickle of an earlier release
        self.__dict__.update(state)

    # -- pickle-free state (online_model.state) ------------------------------------
    def state_arrays(self) -> ModelState:
        """The transition graph in CSR form over one page table, and the user buffers
        (layout: :func:`~online_model.models.covisit.state.export_state`)."""
        return export_state(self)

    @classmethod
    def from_state(cls, params: dict[str, Any], state: ModelState) -> Covisitation:
        """Inverse of :meth:`state_arrays`; the model serves from the arrays right away.

        A scorer loads a snapshot to serve it, not to learn: the transition graph and the
        user buffers stay in the arrays (:mod:`~online_model.models.covisit.stored`)
        until something needs them as dicts (learning, pickling); serving reads
        candidates from the arrays.
        """
        model = cls(**params)
        stored = load_graph(state, model._popularity)
        values = state.values
        model.n_events_learned = int(values["n_events_learned"])
        model._clock.restore(values["clock"])
        model._mixture = float(values["mixture"])
        for name in STORED_DICTS:
            del model.__dict__[name]  # found by __getattr__, which builds them once
        model._stored = stored
        if not model.pop_exponent:
            model._frozen = FrozenView(model, stored)
            model._serve_version = model.n_events_learned
        return model

    # -- delta snapshots (online_model.models.covisit.delta) ---------------------------
    def mark_published(self) -> None:
        """The state as it is now was published: track changes from here on."""
        self._popularity.mark_published()
        self._dirty_rows, self._dirty_users = set(), set()
        self._delta_broken = False

    def delta_nbytes(self) -> int | None:
        """The bytes of :meth:`state_delta`'s arrays, without building them; None when
        only a full state will do (:func:`~online_model.models.covisit.delta.delta_size`)."""
        return delta_size(self)

    def state_delta(self) -> ModelState | None:
        """What changed since :meth:`mark_published`, in O(change); None when only a full
        state will do (layout: :func:`~online_model.models.covisit.delta.build_delta`)."""
        return build_delta(self)

    @staticmethod
    def apply_state_delta(base: ModelState, delta: ModelState) -> ModelState:
        """:meth:`state_arrays` as it is after ``delta`` (see :meth:`state_delta`); ``base``
        is not modified (:func:`~online_model.models.covisit.delta.merge_delta`)."""
        return merge_delta(base, delta)

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes missing from the instance: the dicts a model
        # loaded from arrays has not built yet.
        stored = self.__dict__.get("_stored")
        if stored is None or name not in STORED_DICTS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self.__dict__.update(stored.as_dicts())
        del self.__dict__["_stored"]
        return self.__dict__[name]

    def set_mixture_reference(self, reference: Covisitation | None) -> None:
        """Learn the popularity weight of the mixture on ``reference``'s transitions and
        popularity instead of this model's own (None: its own again).

        A model that learns one partition of the events (a trainer shard's part) passes
        the merged model scorers serve: scored on a part's own, sparser graph, popularity
        would explain more of each page than it does on the whole graph, and the learned
        weight would drift above one trainer's (docs/models.md). The reference is read,
        never changed, and never stored with this model.
        """
        if reference is not None:
            _ = reference._neighbours  # a loaded model builds its dicts here, not per event
        self._mixture_reference = reference

    def user_history(self, user: Hashable) -> Sequence[Hashable]:
        return self._histories.get(user, ())

    def learn_one(
        self,
        user: Hashable,
        item: Hashable,
        y: Reward | None = None,
        x: dict[str, Any] | None = None,
    ) -> None:
        weight, rescale = self._clock.tick(x)
        if rescale is not None:
            self._rescale(rescale)
        hist = self._histories.get(user)
        dirty = self._dirty_rows
        if dirty is not None:
            self._dirty_users.add(user)  # type: ignore[union-attr]
            if hist:  # the rows _link touches: the previous pages' and this page's
                dirty.update(hist)
                dirty.add(item)
        if hist and self.backoff_rate:
            update_mixture(self, hist, item, self._mixture_reference)
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
        self._delta_broken = True
        self._out = {i: v * factor for i, v in self._out.items()}
        for row in self._neighbours.values():
            for j in row:
                row[j] *= factor
        # Cached candidates are normalised by ``_out``: the factor cancels out.

    def _candidates_of(self, item: Hashable) -> list[tuple[Hashable, float]]:
        """The ``n_candidates`` strongest transitions of ``item`` as (next, P(next|item))."""
        cands = self._candidates.get(item)
        if cands is None:
            cands = self._top_transitions(item)
            if cands:
                self._candidates[item] = cands
        return cands

    def _top_transitions(self, item: Hashable) -> list[tuple[Hashable, float]]:
        stored = self._stored
        if stored is not None:
            return stored.top_transitions(item, self.n_candidates)
        row = self._neighbours.get(item)
        if not row:
            return []
        norm = 1.0 / self._out[item]
        top = heapq.nlargest(self.n_candidates, row.items(), key=itemgetter(1))
        return [(j, w * norm) for j, w in top]

    def score_items(
        self, user: Hashable, items: Sequence[Hashable], history: Sequence[Hashable] = ()
    ) -> list[float]:
        scores = mixed_scores(self, history)
        prob, b = self._popularity.probability, self._mixture
        return [scores.get(i, 0.0) + b * prob(i) for i in items]

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        # The numpy view of a model that stopped learning, else (or where the view defers)
        # the dicts: both compute the same list, bit for bit (see scoring's docstring).
        frozen = frozen_view(self)
        if frozen is not None:
            out = frozen.recommend(self, k, history, exclude)
            if out is not None:
                return out
        return recommend_dicts(self, user, k, history, exclude)

    def _recommend_dicts(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        """:meth:`_recommend` with dicts (:func:`~.scoring.recommend_dicts`), always."""
        return recommend_dicts(self, user, k, history, exclude)

    # -- the catalog (online_model.models.forgetting, online_model.catalog) -----------------------
    def forget(self, pages: Collection[Hashable]) -> int:
        """Drop everything learned about ``pages`` (deleted from the catalog): their rows
        and the links into them (:func:`~online_model.models.covisit.catalog.drop_pages`),
        their places in the users' recent pages and their popularity. Returns how many
        pages were known. O(rows + users) per call, whatever the number of pages: the
        trainer calls it per batch of catalog changes. The next snapshot is a full one.

        >>> model = Covisitation()
        >>> for user in ["u1", "u2"]:
        ...     for page in ["home", "sports", "football"]:
        ...         model.learn_one(user, page)
        >>> model.forget(["sports", "unknown"])
        1
        >>> [page for page, _ in model.recommend("new-user", k=3, history=["home"])]
        ['football', 'home']
        >>> "sports" in model.state_arrays().strings["pages"]
        False
        """
        gone = {page for page in pages if page in self._popularity._counts}
        if not gone:
            return 0
        drop_pages(self._neighbours, self._out, self._histories, gone)
        self._popularity.forget(gone)
        self._candidates.clear()
        self._frozen, self._serve_version, self._serve_calls = None, -1, 0
        self._delta_broken = True
        return len(gone)

    def recommend_where(
        self,
        user: Hashable,
        k: int,
        history: Sequence[Hashable],
        exclude: Collection[Hashable],
        among: Collection[Hashable] | None,
        keep: Callable[[Hashable], bool] | None,
    ) -> list[tuple[Hashable, float]]:
        """The top ``k`` of :meth:`recommend` among the pages in ``among`` that ``keep``
        accepts (:class:`online_model.catalog.FiltersCandidates`): popular pages are
        filtered before ranking and transition candidates once they beat the k-th fill,
        so a rule that keeps a tenth of the pages costs about what an unfiltered list
        does, not a ranking of every page.

        >>> model = Covisitation()
        >>> for user in ["u1", "u2"]:
        ...     for page in ["home", "sports", "football"]:
        ...         model.learn_one(user, page)
        >>> keep = lambda page: page != "sports"
        >>> [page for page, _ in model.recommend_where("x", 2, ["home"], {"home"}, None, keep)]
        ['football']
        """
        return recommend_filtered(self, user, k, history, exclude, among, keep)
