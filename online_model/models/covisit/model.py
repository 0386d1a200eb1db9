"""Item-to-item co-visitation over each user's recent pages (sequential transitions)."""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Sequence
from operator import itemgetter
from typing import Any, ClassVar

import numpy as np

from online_model.base import Recommender, Reward
from online_model.errors import ModelError
from online_model.models.decay import ForwardDecay
from online_model.models.popularity import DecayedPopularity
from online_model.state import (
    ModelState,
    check_indptr,
    check_rows,
    id_table,
    indptr_of,
    stack_rows,
    stores_state,
    take_rows,
    tracks_changes,
)

logger = logging.getLogger(__name__)

#: Bounds of the popularity share of the mixture (never exactly 0 or 1: EM would stick).
_MIN_MIXTURE = 1e-4

#: Consecutive ``recommend`` calls without learning after which the model is treated as
#: frozen (a served snapshot) and answered from a numpy view of its state.
_FREEZE_AFTER = 64

_MISSING: Any = object()


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
        self._mixture = min(max(backoff, _MIN_MIXTURE), 1.0 - _MIN_MIXTURE)

    @property
    def n_items(self) -> int:
        return self._popularity.n_items

    # Derived serving state, never pickled (instance values shadow these defaults).
    _stored: _StoredGraph | None = None
    _frozen: _FrozenView | None = None
    _serve_version = -1
    _serve_calls = 0
    # Change tracking for delta snapshots, off until mark_published(): pages whose row
    # of successors changed, users whose buffer changed, and whether a rescale touched
    # every weight (then only a full snapshot will do).
    _dirty_rows: set[Hashable] | None = None
    _dirty_users: set[Hashable] | None = None
    _delta_broken = False

    def __getstate__(self) -> dict[str, Any]:
        if self._stored is not None:
            self.__getattr__(_STORED[0])  # build the dicts a pickle holds
        state = {**self.__dict__, "_candidates": {}}  # a cache: rebuilt on demand
        for derived in ("_frozen", "_serve_version", "_serve_calls", "_stored"):
            state.pop(derived, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_mixture" not in state:
            # A snapshot from before the adaptive mixture: popularity shared the link
            # clock and had a fixed weight; keep serving it that way.
            state.update(pop_half_life=None, backoff_rate=0.0, _mixture=state["backoff"])
            state["_popularity"]._clock = copy.deepcopy(state["_clock"])
        self.__dict__.update(state)

    # -- pickle-free state (online_model.state) ------------------------------------
    def state_arrays(self) -> ModelState:
        """The transition graph in CSR form over one page table, and the user buffers.

        ``pages`` lists every page in popularity's first-seen order (every page the model
        learned is counted there). Row ``i`` of the graph, ``neighbours.page[a:b]`` with
        ``a, b = neighbours.indptr[i:i+2]``, holds the pages that followed page ``i`` and
        ``neighbours.weight[a:b]`` their decayed weights, in the order they were first
        linked; ``out[i]`` is page ``i``'s total outgoing weight (pruned mass included,
        0 without a row). ``users`` and ``histories.*`` hold the recent pages of each
        user in least-recently-active-first order. See docs/model-format.md.
        """
        pop = self._popularity
        pages = id_table(pop._counts, "page")
        index: dict[Hashable, int] = {page: i for i, page in enumerate(pages)}
        neighbours, out = self._neighbours, self._out
        rows = [neighbours.get(page) for page in pages]
        lengths = [len(row) if row else 0 for row in rows]
        present = [row for row in rows if row]
        nnz = sum(lengths)
        if len(present) != len(neighbours):
            raise ModelError("co-visitation rows of pages outside the page table")
        try:
            # Keys then values of each row, in the row's own order (ties depend on it).
            dst = np.fromiter(
                map(index.__getitem__, itertools.chain.from_iterable(present)), np.int32, nnz
            )
            users = id_table(self._histories, "user")
            histories = list(self._histories.values())
            history_pages = np.fromiter(
                map(index.__getitem__, itertools.chain.from_iterable(histories)), np.int32
            )
        except KeyError as exc:  # every learned page is counted: this is a bug
            raise ModelError(f"co-visitation page {exc} is missing from its table") from exc
        weights = np.fromiter(
            itertools.chain.from_iterable(row.values() for row in present), np.float64, nnz
        )
        out_weight = np.fromiter(
            (out[page] if row else 0.0 for page, row in zip(pages, rows, strict=True)),
            np.float64,
            len(pages),
        )
        state = ModelState(
            values={
                "n_events_learned": self.n_events_learned,
                "clock": self._clock.state(),
                "mixture": self._mixture,
            },
            arrays={
                "out": out_weight,
                "neighbours.indptr": indptr_of(lengths),
                "neighbours.page": dst,
                "neighbours.weight": weights,
                "histories.indptr": indptr_of([len(h) for h in histories]),
                "histories.page": history_pages,
            },
            strings={"pages": pages, "users": users},
        )
        state.nest("popularity", pop.state_arrays(index))
        return state

    @classmethod
    def from_state(cls, params: dict[str, Any], state: ModelState) -> Covisitation:
        """Inverse of :meth:`state_arrays`; the model serves from the arrays right away.

        A scorer loads a snapshot to serve it, not to learn: the transition graph and the
        user buffers stay in the arrays (:class:`_StoredGraph`) until something needs
        them as dicts (learning, pickling); serving reads candidates from the arrays.
        """
        model = cls(**params)
        pages = state.table("pages")
        model._popularity.restore(state.sub("popularity"), pages)
        if list(model._popularity._counts) != pages:
            raise ModelError("co-visitation state: page table is not popularity's order")
        stored = _StoredGraph(state, pages)
        values = state.values
        model.n_events_learned = int(values["n_events_learned"])
        model._clock.restore(values["clock"])
        model._mixture = float(values["mixture"])
        for name in _STORED:
            del model.__dict__[name]  # found by __getattr__, which builds them once
        model._stored = stored
        if not model.pop_exponent:
            model._frozen = _FrozenView(model, stored)
            model._serve_version = model.n_events_learned
        return model

    # -- delta snapshots (online_model.model_delta) ---------------------------------------
    def mark_published(self) -> None:
        """The state as it is now was published: track changes from here on."""
        self._popularity.mark_published()
        self._dirty_rows, self._dirty_users = set(), set()
        self._delta_broken = False

    def delta_nbytes(self) -> int | None:
        """The bytes of :meth:`state_delta`'s arrays, in O(changed rows) without building
        them (the users' buffers are counted full); None when only a full state will do.

        The trainer asks first: while it catches up, a second's change touches most of the
        graph, and building a delta only to publish a full snapshot instead costs twice.
        """
        dirty_rows, dirty_users = self._dirty_rows, self._dirty_users
        popularity = self._popularity.delta_nbytes()
        if dirty_rows is None or dirty_users is None or popularity is None or self._delta_broken:
            return None
        neighbours = self._neighbours
        nnz = sum(len(row) for row in map(neighbours.get, dirty_rows, itertools.repeat(())))
        # Per row: its number, out weight and pointer; per link: page and weight.
        users = min(len(dirty_users), len(self._histories))  # the evicted are not sent
        return popularity + 24 * len(dirty_rows) + 12 * nnz + (8 + 4 * self.window) * users

    def state_delta(self) -> ModelState | None:
        """What changed since :meth:`mark_published`, in O(change) (docs/model-format.md):

        new ``pages``; the whole rows (``rows``, ``neighbours.*``, ``out``) of pages whose
        successors changed; the buffers of the users active since (``users``,
        ``histories.*``, in recency order: they are the tail of the LRU order, and
        ``n_users`` says how many users are kept in all, so the evicted ones follow);
        popularity's delta and the scalars. None when only a full state will do.
        """
        dirty_rows, dirty_users = self._dirty_rows, self._dirty_users
        pop = self._popularity
        position = pop._position
        if dirty_rows is None or dirty_users is None or position is None or self._delta_broken:
            return None
        popularity = None
        new_pages = pop.new_items()
        new_rows = {page: i for i, page in enumerate(new_pages, len(position))}
        # Rows of pages in the table: one C-level lookup each, new pages patched after.
        lookup = position.get

        def rows_array(pages: list[Hashable]) -> np.ndarray:
            out = np.fromiter(map(lookup, pages, itertools.repeat(-1)), np.int32, len(pages))
            if new_rows:
                for i in np.flatnonzero(out < 0).tolist():
                    out[i] = new_rows[pages[i]]
            return out

        try:
            popularity = pop.state_delta(owner_rows=new_rows)
            dirty = list(dirty_rows)
            ordered = rows_array(dirty).astype(np.int64)
            by_row = np.argsort(ordered, kind="stable")
            ordered = ordered[by_row]
            neighbours, out = self._neighbours, self._out
            pages = [dirty[i] for i in by_row.tolist()]
            rows = [neighbours.get(page) for page in pages]
            present = [r for r in rows if r]
            lengths = [len(r) if r else 0 for r in rows]
            nnz = sum(lengths)
            dst = rows_array(list(itertools.chain.from_iterable(present)))
            histories = self._histories
            n_active = sum(1 for user in dirty_users if user in histories)
            users = list(itertools.islice(reversed(histories), n_active))[::-1]
            buffers = [histories[user] for user in users]
            history_pages = rows_array(list(itertools.chain.from_iterable(buffers)))
        except KeyError as exc:  # every learned page is counted: this is a bug
            raise ModelError(f"co-visitation page {exc} is missing from its table") from exc
        if popularity is None:
            return None
        weights = np.fromiter(
            itertools.chain.from_iterable(r.values() for r in present), np.float64, nnz
        )
        out_weight = [out[page] if r else 0.0 for page, r in zip(pages, rows, strict=True)]
        state = ModelState(
            values={
                "n_events_learned": self.n_events_learned,
                "clock": self._clock.state(),
                "mixture": self._mixture,
                "n_pages": len(position) + len(new_pages),
                "n_users": len(histories),
            },
            arrays={
                "rows": ordered,
                "out": np.array(out_weight, dtype=np.float64),
                "neighbours.indptr": indptr_of(lengths),
                "neighbours.page": dst,
                "neighbours.weight": weights,
                "histories.indptr": indptr_of([len(h) for h in buffers]),
                "histories.page": history_pages,
            },
            strings={"pages": id_table(new_pages, "page"), "users": id_table(users, "user")},
        )
        state.nest("popularity", popularity)
        return state

    @staticmethod
    def apply_state_delta(base: ModelState, delta: ModelState) -> ModelState:
        """:meth:`state_arrays` as it is after ``delta`` (see :meth:`state_delta`), built
        with numpy gathers over the base arrays; ``base`` is not modified."""
        pages, new_pages = base.table("pages"), delta.table("pages")
        values = dict(delta.values)
        n_pages, n_users = int(values.pop("n_pages")), int(values.pop("n_users"))
        n = len(pages)
        if n + len(new_pages) != n_pages:
            raise ModelError(f"co-visitation delta: {n} + {len(new_pages)} pages is not {n_pages}")
        # Rows of successors: changed rows from the delta, new pages without one empty.
        rows = delta.array("rows", np.int64)
        check_rows(rows, n_pages, "co-visitation delta rows")
        if len(rows) > 1 and bool(np.any(np.diff(rows) <= 0)):
            raise ModelError("co-visitation delta: rows are not in increasing order")
        dst = delta.array("neighbours.page", np.int32)
        weight = delta.array("neighbours.weight", np.float64)
        out = delta.array("out", np.float64)
        indptr = delta.array("neighbours.indptr", np.int64)
        check_indptr(indptr, len(rows), len(dst), "co-visitation delta neighbours")
        if len(weight) != len(dst) or len(out) != len(rows):
            raise ModelError("co-visitation delta: graph arrays differ in length")
        check_rows(dst, n_pages, "co-visitation delta neighbours.page")
        base_indptr = base.array("neighbours.indptr", np.int64)
        stacked, graph = stack_rows(
            base_indptr,
            [base.array("neighbours.page", np.int32), base.array("neighbours.weight", np.float64)],
            indptr,
            [dst, weight],
        )
        source = np.arange(n_pages, dtype=np.int64)
        source[n:] = n + len(rows)  # the empty row
        source[rows] = n + np.arange(len(rows))
        new_indptr, (new_dst, new_weight) = take_rows(stacked, graph, source)
        new_out = np.concatenate([base.array("out", np.float64), np.zeros(len(new_pages))])
        new_out[rows] = out
        # User buffers: the untouched users in their order, less the evicted (the least
        # recently active, i.e. the first ones), then the active users of the delta.
        users, active = base.table("users"), delta.table("users")
        active_set = set(active)
        h_pages = delta.array("histories.page", np.int32)
        h_indptr = delta.array("histories.indptr", np.int64)
        check_indptr(h_indptr, len(active), len(h_pages), "co-visitation delta histories")
        check_rows(h_pages, n_pages, "co-visitation delta histories.page")
        kept = [i for i, user in enumerate(users) if user not in active_set]
        evicted = len(kept) + len(active) - n_users
        if len(active_set) != len(active) or not 0 <= evicted <= len(kept):
            raise ModelError(f"co-visitation delta: users do not add up to {n_users}")
        kept = kept[evicted:]
        stacked, buffers = stack_rows(
            base.array("histories.indptr", np.int64),
            [base.array("histories.page", np.int32)],
            h_indptr,
            [h_pages],
        )
        order = np.array(kept + list(range(len(users), len(users) + len(active))), np.int64)
        new_h_indptr, (new_h_pages,) = take_rows(stacked, buffers, order)
        state = ModelState(
            values=values,
            arrays={
                "out": new_out,
                "neighbours.indptr": new_indptr,
                "neighbours.page": new_dst,
                "neighbours.weight": new_weight,
                "histories.indptr": new_h_indptr,
                "histories.page": new_h_pages,
            },
            strings={"pages": pages + new_pages, "users": [users[i] for i in kept] + active},
        )
        state.values.pop("popularity", None)
        state.nest(
            "popularity",
            DecayedPopularity.apply_state_delta(base.sub("popularity"), delta.sub("popularity")),
        )
        return state

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes missing from the instance: the dicts a model
        # loaded from arrays has not built yet.
        stored = self.__dict__.get("_stored")
        if stored is None or name not in _STORED:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self.__dict__.update(stored.as_dicts())
        del self.__dict__["_stored"]
        return self.__dict__[name]

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

    def _transition_sums(self, history: Sequence[Hashable]) -> tuple[dict[Hashable, float], float]:
        """Unnormalised transition scores from the last ``n_recent`` distinct pages.

        Returns ``{p: sum of recency weight x P(p | q)}`` over those pages ``q`` and the
        sum of the recency weights of the pages that had candidates. The hot path of
        serving: the per-item candidate lists are cached, the first list is copied in C.
        """
        scores: dict[Hashable, float] = {}
        get = scores.get
        cache = self._candidates
        n_recent, recency = self.n_recent, self.recency
        seen: set[Hashable] = set()
        age_weight = 1.0
        total_weight = 0.0
        for prev in reversed(history):
            if prev in seen:
                continue
            seen.add(prev)
            cands = cache.get(prev)
            if cands is None:
                cands = self._candidates_of(prev)
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

    def _scores(self, history: Sequence[Hashable]) -> dict[Hashable, float]:
        """``(1 - m) x`` the transition distribution from the last ``n_recent`` pages."""
        scores, total_weight = self._transition_sums(history)
        if not scores:
            return scores
        if self.pop_exponent:
            scores = self._pop_corrected(scores)
        norm = (1.0 - self._mixture) / total_weight
        return {i: s * norm for i, s in scores.items()}

    def _pop_corrected(self, scores: dict[Hashable, float]) -> dict[Hashable, float]:
        counts, e = self._popularity._counts, -self.pop_exponent
        return {i: s * max(counts[i], 1e-300) ** e for i, s in scores.items()}

    def score_items(
        self, user: Hashable, items: Sequence[Hashable], history: Sequence[Hashable] = ()
    ) -> list[float]:
        scores = self._scores(history)
        prob, b = self._popularity.probability, self._mixture
        return [scores.get(i, 0.0) + b * prob(i) for i in items]

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        # Score = (1 - m) P_trans(p) + m P_pop(p) over the transition candidates; popular
        # pages that are not candidates fill the list with m P_pop(p). The answer is the
        # top k of [candidates..., fills...] by a stable sort (ties keep that order). Both
        # paths compute exactly that, with the same float operations in the same order.
        frozen = self._frozen_view()
        if frozen is not None:
            out = frozen.recommend(self, k, history, exclude)
            if out is not None:
                return out
        return self._recommend_dicts(user, k, history, exclude)

    def _frozen_view(self) -> _FrozenView | None:
        """The numpy view of the model once it stopped learning, else None.

        A scorer serves a snapshot that never learns; the trainer's evaluator asks between
        two ``learn_one`` calls, so it never waits ``_FREEZE_AFTER`` calls and keeps the
        dict path (whose cost does not depend on the model's size).
        """
        version = self.n_events_learned
        frozen = self._frozen
        if frozen is not None and frozen.version == version:
            return frozen
        if self._serve_version != version:
            self._serve_version, self._serve_calls, self._frozen = version, 0, None
            return None
        self._serve_calls += 1
        if self._serve_calls < _FREEZE_AFTER or self.pop_exponent:
            return None
        frozen = self._frozen = _FrozenView(self)
        return frozen

    def _recommend_dicts(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        """:meth:`_recommend` with dicts: for a model that is learning, and the rare cases."""
        scores, total_weight = self._transition_sums(history)
        pop = self._popularity
        b = self._mixture
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
            if self.pop_exponent:
                scores = self._pop_corrected(scores)
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
                    (i, v)
                    for i, s in scores.items()
                    if (v := s * norm) >= floor and i not in exclude
                ]
            ranked += fills
        else:
            ranked = fills
        ranked.sort(key=itemgetter(1), reverse=True)  # stable: ties keep candidates first
        return ranked[:k]

    # -- the catalog (online_model.models.forgetting, online_model.catalog) -----------------------
    def forget(self, pages: Collection[Hashable]) -> int:
        """Drop everything learned about ``pages`` (deleted from the catalog): their rows,
        the links into them from other pages' rows (whose outgoing weight shrinks by as
        much, so the remaining transitions share what the page had), their places in the
        users' recent pages and their popularity. Returns how many pages were known.

        O(rows + users) per call, whatever the number of pages: the trainer calls it per
        batch of catalog changes. The next snapshot is a full one (pages left the table).

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
        neighbours, out = self._neighbours, self._out
        for page in gone:
            neighbours.pop(page, None)
            out.pop(page, None)
        for src, row in list(neighbours.items()):
            if row.keys().isdisjoint(gone):
                continue
            for page in gone.intersection(row):
                out[src] -= row.pop(page)
            if not row:
                del neighbours[src]
                del out[src]
            elif out[src] <= 0.0:  # float residue: keep P(next | src) a probability
                out[src] = sum(row.values())
        for user, hist in self._histories.items():
            if not gone.isdisjoint(hist):
                self._histories[user] = [page for page in hist if page not in gone]
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
        if k <= 0:
            return []
        scores, total_weight = self._transition_sums(history)
        pop = self._popularity
        b = self._mixture
        # Popular pages that are not candidates, best first, from the top list.
        fills: list[tuple[Hashable, float]] = []
        top = pop.top()
        for item, p in top if among is None else pop.top_among(among):
            if item not in scores and item not in exclude and (keep is None or keep(item)):
                fills.append((item, b * p))
                if len(fills) >= k:
                    break
        # k fills score at least ``floor``: a candidate below it cannot make the top k.
        floor = fills[-1][1] if len(fills) >= k else -math.inf
        ranked: list[tuple[Hashable, float]] = []
        if scores:
            if self.pop_exponent:
                scores = self._pop_corrected(scores)
            norm = (1.0 - b) / total_weight
            counts, scale = pop._counts, (b / pop._total if b else 0.0)
            for i, s in scores.items():
                v = s * norm + scale * counts[i] if b else s * norm
                if (
                    v >= floor
                    and (among is None or i in among)
                    and i not in exclude
                    and (keep is None or keep(i))
                ):
                    ranked.append((i, v))
        if len(fills) < k and top and len(pop._top) < len(pop._counts):
            # A page past the top list scores at most b x the top list's last share: it
            # can only enter when fewer than k accepted pages score that much (rare: ask
            # ``among``, or every page, for the popular pages the top list lacks).
            bound = b * top[-1][1]
            if sum(1 for _, v in ranked if v >= bound) + len(fills) < k:
                more = pop.recommend_where(user, k + len(scores), (), exclude, among, keep)
                fills += [
                    (item, b * p) for item, p in more if item not in scores and item not in pop._top
                ][: k - len(fills)]
        ranked += fills
        ranked.sort(key=itemgetter(1), reverse=True)  # stable: ties keep candidates first
        return ranked[:k]


#: The state a model loaded from arrays builds as dicts only on first use.
_STORED = ("_neighbours", "_out", "_histories")


class _StoredGraph:
    """The transition graph and user buffers of :meth:`Covisitation.state_arrays`, read
    back and checked, answering candidate queries until they are needed as dicts."""

    def __init__(self, state: ModelState, pages: list[str]) -> None:
        n_pages = len(pages)
        self.pages = pages
        self.out = state.array("out", np.float64)
        self.dst = state.array("neighbours.page", np.int32)
        self.weight = state.array("neighbours.weight", np.float64)
        if len(self.out) != n_pages or len(self.dst) != len(self.weight):
            raise ModelError("co-visitation state: graph arrays differ in length")
        self.indptr = check_indptr(
            state.array("neighbours.indptr", np.int64), n_pages, len(self.dst), "neighbours"
        )
        check_rows(self.dst, n_pages, "neighbours.page")  # checked once, used many times
        self.users = state.table("users")
        self.history_pages = state.array("histories.page", np.int32)
        self.history_indptr = check_indptr(
            state.array("histories.indptr", np.int64),
            len(self.users),
            len(self.history_pages),
            "histories",
        )
        check_rows(self.history_pages, n_pages, "histories.page")
        self._index: dict[Hashable, int] | None = None

    def candidates(self, i: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Page ``i``'s ``n`` strongest successors (rows) and P(successor | page) -
        :meth:`Covisitation._top_transitions` on the arrays, with the same floats: a
        stable sort by decreasing weight is ``heapq.nlargest``'s order, and each weight
        is multiplied by the same ``1.0 / out``."""
        a, b = self.indptr[i], self.indptr[i + 1]
        if a == b:
            return None
        row = self.weight[a:b]
        top = np.argsort(-row, kind="stable")[:n]
        return self.dst[a:b][top].astype(np.intp), row[top] * (1.0 / float(self.out[i]))

    def top_transitions(self, item: Hashable, n: int) -> list[tuple[Hashable, float]]:
        if self._index is None:
            self._index = {page: i for i, page in enumerate(self.pages)}
        i = self._index.get(item)
        found = None if i is None else self.candidates(i, n)
        if found is None:
            return []
        pages = self.pages
        return [(pages[j], p) for j, p in zip(found[0].tolist(), found[1].tolist(), strict=True)]

    def as_dicts(self) -> dict[str, Any]:
        """``_neighbours``, ``_out`` and ``_histories`` as the learning code keeps them."""
        pages, indptr = self.pages, self.indptr
        dst_pages = [pages[j] for j in self.dst.tolist()]
        weights, out = self.weight.tolist(), self.out.tolist()
        neighbours: dict[Hashable, dict[Hashable, float]] = {}
        out_weight: dict[Hashable, float] = {}
        for i, (a, b) in enumerate(itertools.pairwise(indptr)):
            if b > a:
                page = pages[i]
                neighbours[page] = dict(zip(dst_pages[a:b], weights[a:b], strict=True))
                out_weight[page] = out[i]
        flat = [pages[j] for j in self.history_pages.tolist()]
        hptr = self.history_indptr
        histories = OrderedDict(
            (user, flat[a:b]) for user, a, b in zip(self.users, hptr, hptr[1:], strict=False)
        )
        return {"_neighbours": neighbours, "_out": out_weight, "_histories": histories}


class _FrozenView:
    """A model's serving state as numpy arrays, valid while it learns nothing more.

    Items are numbered in the order of the popularity counts; each history page's
    candidates become an index array and its probabilities, multiplied by each recency
    weight the first time that age is needed. One ``recommend`` then sums the candidates
    of the recent pages with ``bincount`` (in input order, so the sums are bit-for-bit
    those of the dict path),
    ranks every (page, candidate) position by a stable sort of the mixed score (equal
    scores keep the first position, as the dict's insertion order does) and walks the
    ranking in Python, skipping repeats and excluded pages and merging in the popular
    fills. Never pickled: :class:`Covisitation` drops it and rebuilds it on demand.
    """

    def __init__(self, model: Covisitation, stored: _StoredGraph | None = None) -> None:
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
        self, model: Covisitation, item: Hashable
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
        model: Covisitation,
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
                entry = cache.get(prev, _MISSING)
                if entry is _MISSING:
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
