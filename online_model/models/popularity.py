"""Decayed popularity: the cold-start model and the backoff of every other model."""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from operator import itemgetter
from typing import Any, ClassVar

import numpy as np

from online_model.base import Recommender, Reward
from online_model.errors import ModelError
from online_model.models.decay import ForwardDecay
from online_model.state import (
    ModelState,
    check_rows,
    id_table,
    rows_of,
    stores_state,
    tracks_changes,
)

logger = logging.getLogger(__name__)


@tracks_changes
@stores_state
class DecayedPopularity(Recommender):
    """Recommend the most viewed pages, with old views fading exponentially.

    Counts are forward-decayed (see :mod:`online_model.models.decay`), so an event costs O(1)
    and ranking needs no decay pass. The exact top ``top_m`` items are maintained
    incrementally (decayed counts only grow relative to each other), which makes
    ``recommend`` a scan of a short cached list instead of a sort of all items.

    Memory is O(items). The same answer is given to every user: it is the fallback for
    users with no usable history.

    Parameters
    ----------
    half_life
        Half-life of a view, in events (``unit="events"``) or seconds (``unit="seconds"``,
        read from ``x["ts"]`` in epoch ms). ``0`` disables decay.
    unit
        ``"events"`` or ``"seconds"``.
    top_m
        Size of the incrementally maintained top list.
    seed
        Unused (the model is deterministic); kept for a uniform constructor.

    Examples
    --------
    >>> model = DecayedPopularity(half_life=100)
    >>> for user, page in [("a", "p1"), ("b", "p1"), ("c", "p2"), ("a", "p3"), ("b", "p1")]:
    ...     model.learn_one(user, page)
    >>> [page for page, _ in model.recommend("new-user", k=2)]  # p3 is newer than p2
    ['p1', 'p3']
    >>> [page for page, _ in model.recommend("a", k=2, exclude={"p1"})]
    ['p3', 'p2']
    >>> model.n_events_learned, model.n_items
    (5, 3)
    >>> copy = DecayedPopularity.from_state(model._get_params(), model.state_arrays())
    >>> copy.recommend("new-user", k=3) == model.recommend("new-user", k=3)
    True
    """

    #: The name files record for this class (:mod:`online_model.state.registration`).
    STORED_AS: ClassVar[str] = "online_model.popularity.DecayedPopularity"

    def __init__(
        self,
        half_life: float = 20_000,
        unit: str = "events",
        top_m: int = 256,
        seed: int | None = None,
    ) -> None:
        self.half_life = half_life
        self.unit = unit
        self.top_m = top_m
        self.seed = seed
        self.n_events_learned = 0
        self._clock = ForwardDecay(half_life, unit)
        self._counts: dict[Hashable, float] = {}
        self._total = 0.0
        self._top: dict[Hashable, float] = {}
        self._top_min = 0.0
        self._top_sorted: list[tuple[Hashable, float]] | None = None

    # Change tracking for delta snapshots (off until :meth:`mark_published`; class
    # defaults, so models loaded from any snapshot start without it).
    _dirty: set[Hashable] | None = None
    _position: dict[Hashable, int] | None = None  # item -> row, for the published items
    _delta_broken = False  # a rescale changed every count: only a full state will do

    @property
    def n_items(self) -> int:
        return len(self._counts)

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
        self.add(item, weight)
        self.n_events_learned += 1

    def add(self, item: Hashable, weight: float) -> None:
        """Add an already decayed ``weight`` to ``item`` (used by models that embed this one)."""
        count = self._counts.get(item, 0.0) + weight
        self._counts[item] = count
        if self._dirty is not None:
            self._dirty.add(item)
        self._total += weight
        top = self._top
        if item in top:
            top[item] = count
            self._top_sorted = None
        elif len(top) < self.top_m:
            top[item] = count
            self._top_min = min(top.values())
            self._top_sorted = None
        elif count > self._top_min:
            weakest = min(top, key=top.__getitem__)
            # ``_top_min`` may be stale (members only grow); only a real winner enters.
            if top[weakest] < count:
                del top[weakest]
                top[item] = count
                self._top_sorted = None
            self._top_min = min(top.values())

    def _rescale(self, factor: float) -> None:
        self._counts = {item: c * factor for item, c in self._counts.items()}
        self._top = {item: c * factor for item, c in self._top.items()}
        self._top_min *= factor
        self._total *= factor
        self._top_sorted = None
        self._delta_broken = True

    # -- pickle-free state (online_model.state) ------------------------------------
    def state_arrays(self, pages: dict[Hashable, int] | None = None) -> ModelState:
        """Counts in first-seen order, the top list as positions, the clock as values.

        An owner that keeps its own page table passes ``pages`` (page -> row of that
        table); the items are then stored as rows of it instead of in a table of their own.
        """
        items = list(self._counts)
        state = ModelState(
            values=self._scalars(),
            arrays={
                "counts": np.fromiter(self._counts.values(), np.float64, len(items)),
            },
        )
        # The top list's own order matters for ties: store it, not just membership.
        position = {item: i for i, item in enumerate(items)}
        state.arrays["top"] = np.fromiter(
            (position[t] for t in self._top), np.int64, len(self._top)
        )
        if pages is None:
            state.strings["pages"] = id_table(items, "page")
        else:
            state.arrays["pages"] = np.fromiter((pages[i] for i in items), np.int64, len(items))
        return state

    def _scalars(self) -> dict[str, Any]:
        return {
            "n_events_learned": self.n_events_learned,
            "total": self._total,
            "top_min": self._top_min,
            "clock": self._clock.state(),
        }

    @classmethod
    def from_state(
        cls, params: dict[str, Any], state: ModelState, pages: list[str] | None = None
    ) -> DecayedPopularity:
        """Inverse of :meth:`state_arrays` (``pages``: the owner's table, if it passed one)."""
        model = cls(**params)
        model.restore(state, pages)
        return model

    def restore(self, state: ModelState, pages: list[str] | None = None) -> None:
        """Take over ``state`` (see :meth:`state_arrays`) in place."""
        if pages is None:
            items: list[Any] = state.table("pages")
        else:
            rows = rows_of(state.array("pages", np.int64), len(pages), "popularity pages")
            items = [pages[i] for i in rows]
        counts = state.array("counts", np.float64)
        if len(counts) != len(items):
            raise ModelError("popularity state: counts and pages differ in length")
        self._counts = dict(zip(items, counts.tolist(), strict=True))
        top = rows_of(state.array("top", np.int64), len(items), "popularity top")
        self._top = {items[i]: self._counts[items[i]] for i in top}
        values = state.values
        self.n_events_learned = int(values["n_events_learned"])
        self._total = float(values["total"])
        self._top_min = float(values["top_min"])
        self._clock.restore(values["clock"])
        self._top_sorted = None

    # -- delta snapshots (online_model.model_delta) ---------------------------------------
    def mark_published(self) -> None:
        """The state as it is now was published: track changes from here on.

        The first call indexes every item (O(items), once: it follows a full snapshot,
        which cost that anyway); later calls index only the items added since.
        """
        if self._position is None:
            self._position = {item: i for i, item in enumerate(self._counts)}
        else:
            position = self._position
            n = len(position)
            for i, item in enumerate(itertools.islice(self._counts, n, None), n):
                position[item] = i
        self._dirty = set()
        self._delta_broken = False

    def new_items(self) -> list[Hashable]:
        """Items learned since :meth:`mark_published`, in first-seen order."""
        n = 0 if self._position is None else len(self._position)
        # They are the last ones of the dict: read them from its end, in O(new items).
        new = list(itertools.islice(reversed(self._counts), len(self._counts) - n))
        new.reverse()
        return new

    def delta_nbytes(self) -> int | None:
        """The bytes of :meth:`state_delta`'s arrays, in O(1) without building them;
        None when only a full state will do."""
        position, dirty = self._position, self._dirty
        if position is None or dirty is None or self._delta_broken:
            return None
        return 16 * len(dirty) + 8 * (len(self._top) + len(self._counts) - len(position))

    def state_delta(self, owner_rows: Mapping[Hashable, int] | None = None) -> ModelState | None:
        """What changed since :meth:`mark_published`, or None when only a full state will do.

        ``counts`` of the ``changed`` rows (sorted), the whole top list and the scalars;
        new items as a ``pages`` table (or, embedded, their rows in the owner's table,
        ``owner_rows``). Cost: O(items changed), not O(items).
        """
        position, dirty = self._position, self._dirty
        if position is None or dirty is None or self._delta_broken:
            return None
        new = self.new_items()
        n = len(position)
        row = {item: i for i, item in enumerate(new, n)}
        row.update((item, position[item]) for item in dirty if item in position)
        changed = sorted(row[item] for item in dirty)
        by_row = {row[item]: item for item in dirty}
        counts = self._counts
        state = ModelState(
            values={**self._scalars(), "n_items": len(counts)},
            arrays={
                "changed": np.array(changed, dtype=np.int64),
                "counts": np.array([counts[by_row[r]] for r in changed], dtype=np.float64),
                "top": np.array([row.get(t, position.get(t, -1)) for t in self._top], np.int64),
            },
        )
        if owner_rows is None:
            state.strings["pages"] = id_table(new, "page")
        else:
            state.arrays["pages"] = np.array([owner_rows[i] for i in new], dtype=np.int64)
        return state

    @staticmethod
    def apply_state_delta(base: ModelState, delta: ModelState) -> ModelState:
        """The state :meth:`state_arrays` gives after the changes ``delta`` describes.

        Pure: ``base`` is not modified (a scorer may be serving from its arrays).
        """
        counts = base.array("counts", np.float64)
        values = dict(delta.values)
        n_items = int(values.pop("n_items"))
        embedded = "pages" in base.arrays
        if embedded:
            new_rows = delta.array("pages", np.int64)
            n_new = len(new_rows)
        else:
            new_pages = delta.table("pages")
            n_new = len(new_pages)
        if n_items != len(counts) + n_new:
            raise ModelError(
                f"popularity delta: {len(counts)} + {n_new} new items is not {n_items}"
            )
        changed = delta.array("changed", np.int64)
        changed_counts = delta.array("counts", np.float64)
        if len(changed) != len(changed_counts):
            raise ModelError("popularity delta: changed rows and counts differ in length")
        check_rows(changed, n_items, "popularity delta rows")
        counts = np.concatenate([counts, np.zeros(n_new)])
        counts[changed] = changed_counts
        top = delta.array("top", np.int64)
        check_rows(top, n_items, "popularity delta top")
        state = ModelState(values=values, arrays={"counts": counts, "top": top})
        if embedded:
            state.arrays["pages"] = np.concatenate([base.array("pages", np.int64), new_rows])
        else:
            state.strings["pages"] = base.table("pages") + new_pages
        return state

    # -- the catalog (online_model.models.forgetting, online_model.catalog) -----------------------
    def forget(self, items: Collection[Hashable]) -> int:
        """Drop every count of ``items`` (pages deleted from the catalog); returns how many
        were known. The top list is refilled from the remaining counts, and the next
        snapshot must be a full one (rows were removed, which a delta cannot say).

        >>> model = DecayedPopularity()
        >>> for page in ["a", "a", "b", "c"]:
        ...     model.learn_one("u", page)
        >>> model.forget({"a", "zzz"}), [page for page, _ in model.recommend("v", k=3)]
        (1, ['c', 'b'])
        """
        counts = self._counts
        gone = [item for item in items if item in counts]
        if not gone:
            return 0
        for item in gone:
            self._total -= counts.pop(item)
        self._total = max(self._total, 0.0)
        if any(item in self._top for item in gone):
            top = heapq.nlargest(self.top_m, counts.items(), key=itemgetter(1))
            ranked = dict(top)
            # Keep the old list's order for survivors (ties depend on it), newcomers after.
            self._top = {i: c for i, c in self._top.items() if i in ranked}
            self._top.update((i, c) for i, c in top if i not in self._top)
            self._top_min = min(self._top.values()) if self._top else 0.0
            self._top_sorted = None
        # Published rows moved: index them again after the next full snapshot.
        self._position = None
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
        accepts, without ranking the others (:class:`online_model.catalog.FiltersCandidates`).

        >>> model = DecayedPopularity()
        >>> for page in ["a", "a", "b", "c"]:
        ...     model.learn_one("u", page)
        >>> [p for p, _ in model.recommend_where("v", 2, [], set(), None, lambda p: p != "a")]
        ['c', 'b']
        >>> [p for p, _ in model.recommend_where("v", 2, [], set(), {"a", "b"}, None)]
        ['a', 'b']
        """
        out: list[tuple[Hashable, float]] = []
        if k <= 0:
            return out
        for item, score in self.top() if among is None else self.top_among(among):
            if item not in exclude and (keep is None or keep(item)):
                out.append((item, score))
                if len(out) == k:
                    return out
        counts = self._counts
        if len(self._top) == len(counts):
            return out
        # Past the top list: rank ``among`` (every known page without it).
        top = self._top
        candidates = counts if among is None else list(among)
        norm = 1.0 / self._total if self._total else 0.0
        more = heapq.nlargest(
            k - len(out),
            (
                (i, counts[i])
                for i in candidates
                if i in counts and i not in top and i not in exclude and (keep is None or keep(i))
            ),
            key=itemgetter(1),
        )
        return out + [(item, c * norm) for item, c in more]

    def probability(self, item: Hashable) -> float:
        """Share of the decayed views that went to ``item``."""
        return self._counts.get(item, 0.0) / self._total if self._total else 0.0

    def top(self) -> list[tuple[Hashable, float]]:
        """The maintained top list as (item, share of decayed views), best first."""
        if self._top_sorted is None:
            norm = 1.0 / self._total if self._total else 0.0
            ranked = sorted(self._top.items(), key=itemgetter(1), reverse=True)
            self._top_sorted = [(item, c * norm) for item, c in ranked]
        return self._top_sorted

    _ranks: tuple[list[tuple[Hashable, float]], dict[Hashable, int]] | None = None

    def top_among(self, among: Collection[Hashable]) -> list[tuple[Hashable, float]]:
        """:meth:`top` restricted to the items in ``among``, in the same order; for a set
        ``among`` the members are found in C, not by walking the whole top list."""
        top = self.top()
        cached = self._ranks
        if cached is None or cached[0] is not top:
            cached = self._ranks = (top, {item: r for r, (item, _) in enumerate(top)})
        ranks = cached[1]
        if isinstance(among, (set, frozenset)):
            found = among.intersection(ranks)
        else:
            found = {item for item in ranks if item in among}
        return [top[r] for r in sorted(map(ranks.__getitem__, found))]

    def score_items(
        self, user: Hashable, items: Sequence[Hashable], history: Sequence[Hashable] = ()
    ) -> list[float]:
        return [self.probability(item) for item in items]

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        out: list[tuple[Hashable, float]] = []
        for item, score in self.top():
            if item not in exclude:
                out.append((item, score))
                if len(out) == k:
                    return out
        if len(self._top) == len(self._counts):
            return out  # the top list holds every item: nothing more to find
        # Rare path: ``exclude`` swallowed the whole top list.
        norm = 1.0 / self._total if self._total else 0.0
        ranked = heapq.nlargest(
            k, ((i, c) for i, c in self._counts.items() if i not in exclude), key=itemgetter(1)
        )
        return [(item, c * norm) for item, c in ranked]
