"""Co-visitation learned in bulk: the statistics of :class:`Covisitation`, then the model.

:class:`~online_model.models.covisit.Covisitation` learns one event at a time. Its state after a
sequence of events is a function of per-user page sequences and of each event's place in
the global learning order, so it can also be computed in bulk, split by user:

1. number every event in learning order (``index``, 0-based) and note its time;
2. the forward-decay clocks (links and popularity) reach a final origin that depends only
   on the sequence of times: :meth:`DecayClock.final_origin` replays their rescales;
3. per user, in order, :func:`user_transitions` emits exactly the ``(src, dst, weight)``
   links ``learn_one`` would add, with each event's weight taken against the final origin
   (the online model multiplies earlier weights by the same rescale factors instead);
4. sums per pair and per source, popularity per page, and the users' last pages are
   aggregated: :func:`bulk_statistics` does it with numpy over :class:`OrderedEvents`
   (columns of codes), handing the pair counting of user slices and the strongest links
   of each page (:mod:`online_model.models.covisit.pairs`) to a ``map_reduce`` function (Spark
   tasks in :mod:`streams.retrain`, a plain loop here);
   :func:`statistics_in_memory` is the event-by-event reference it is tested against;
5. :func:`build_covisitation` turns those aggregates into a model that serves, and keeps
   learning, like the one that saw every event.

What differs from learning the same events online, in order
----------------------------------------------------------
- **Neighbour pruning.** Online, a row that grows past ``2 * max_neighbours`` keeps its
  strongest half, and a pruned neighbour that comes back starts again from zero. Here every
  row holds the exact ``2 * max_neighbours`` strongest of the *full* sums (the most an
  unpruned online row holds). Rows that never exceeded ``2 * max_neighbours`` distinct
  neighbours are identical; the others hold what lossless pruning would have kept.
  ``P(next | page)`` is normalised by the total outgoing weight (pruned mass included) in
  both, and that total is exact here.
- **Users' LRU.** Online, at most ``max_users`` users' recent pages are kept and a user
  evicted between two views does not link them. Here every user's whole sequence links
  (as if ``max_users`` were unbounded); the model then keeps the last ``window`` pages of
  the ``max_users`` most recently active users, in that LRU order, so learning continues
  as it would. Identical while the log has at most ``max_users`` users.
- **The learned popularity weight m** is a prequential (sequential) estimate: each step
  scores the next page against the state *before* it, so it is not rebuilt here. The model
  starts with ``m = backoff`` and the caller learns the newest events of the log online
  (``streams.retrain`` does: the "tail"), which moves ``m`` as the online model moved it
  over those events. The result is exactly the model that learned the whole log online
  with ``m`` held at ``backoff`` until the tail began. EM on ``m`` is slow to forget its
  start when ``m`` is small, so a tail of a few thousand events does not reproduce the
  value a model that learned the whole log online would hold; it is the estimate over the
  tail alone.
- **Float sums** are taken in another order (per pair, then per source), so weights agree
  to rounding, not bit for bit; pages whose scores tie exactly may swap places.

No I/O here: the module is shipped to executors and must only need the standard library
and numpy.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from online_model.models.covisit import Covisitation
from online_model.models.covisit.pairs import pair_buckets, strongest_links
from online_model.models.decay import _MAX_EXPONENT


@dataclass(frozen=True)
class DecayClock:
    """The arithmetic of :class:`~online_model.models.decay.ForwardDecay`, for a known sequence.

    ``time_of`` is what the clock reads for an event (its 0-based index for
    ``unit="events"``, seconds for ``unit="seconds"``); ``final_origin`` is the origin the
    online clock holds after the last event; ``weight`` is an event's weight against it.

    Examples
    --------
    >>> clock = DecayClock(half_life=2, unit="events")
    >>> origin = clock.final_origin(3, clock.time_of(0, 0), lambda t: None)
    >>> [round(clock.weight(clock.time_of(i, 0), origin), 3) for i in range(3)]
    [1.0, 1.414, 2.0]
    """

    half_life: float | None
    unit: str = "events"

    def time_of(self, index: int, ts_ms: int | None) -> float:
        if self.unit == "seconds" and ts_ms is not None:
            return float(ts_ms) / 1000.0
        return float(index)

    def final_origin(
        self, n_events: int, first_time: float, first_after: Callable[[float], float | None]
    ) -> float | None:
        """Origin after ``n_events`` whose first time is ``first_time``.

        ``first_after(t)`` returns the smallest event time greater than ``t`` (None if
        there is none); times must be non-decreasing in learning order, which holds for
        events sorted by time. Rescales are rare (one per 255 half-lives), so this asks few
        questions. None when the clock does not decay or saw no event.
        """
        if not self.half_life or n_events <= 0:
            return None
        origin = first_time
        t = first_after(origin + _MAX_EXPONENT * self.half_life)
        while t is not None:
            exponent = (t - origin) / self.half_life
            if exponent > _MAX_EXPONENT:
                origin += (exponent - 1.0) * self.half_life  # what ForwardDecay.tick does
                t = first_after(origin + _MAX_EXPONENT * self.half_life)
            else:  # float edge: this time does not rescale after all; try the next one
                t = first_after(t)
        return origin

    def weight(self, t: float, origin: float | None) -> float:
        if not self.half_life or origin is None:
            return 1.0
        return math.pow(2.0, (t - origin) / self.half_life)


def events_first_after(n_events: int) -> Callable[[float], float | None]:
    """``first_after`` for ``unit="events"``: times are the indexes 0 .. n_events - 1."""

    def first_after(t: float) -> float | None:
        nxt = math.floor(t) + 1
        return float(max(nxt, 0)) if nxt < n_events else None

    return first_after


def clocks_of(params: dict[str, Any]) -> tuple[DecayClock, DecayClock]:
    """The link clock and the popularity clock of a :class:`Covisitation` with ``params``."""
    model = Covisitation(**params)
    pop = model._popularity._clock
    return DecayClock(model.half_life, model.unit), DecayClock(pop.half_life, pop.unit)


@dataclass(frozen=True)
class UserEvent:
    """One view of a user's sequence: its place in learning order, its page and time."""

    index: int
    page: Hashable
    ts_ms: int | None = None


def user_transitions(
    events: Sequence[UserEvent],
    params: dict[str, Any],
    clock: DecayClock,
    origin: float | None,
) -> Iterator[tuple[Hashable, Hashable, float]]:
    """The ``(src, dst, weight)`` links ``learn_one`` adds for one user's views, in order.

    ``events`` must be in learning order. Mirrors :meth:`Covisitation.learn_one` (same float
    operations): each view links from the previous ``window`` pages with weight
    ``w * decay_position ** distance`` and back with ``backward_weight`` times that;
    a repeat of the same page is not a transition.
    """
    window = int(params.get("window", 5))
    decay = float(params.get("decay_position", 0.6))
    back = float(params.get("backward_weight", 0.5))
    position_weights = [decay**d for d in range(window)]
    hist: list[Hashable] = []
    for event in events:
        item = event.page
        weight = clock.weight(clock.time_of(event.index, event.ts_ms), origin)
        for dist, prev in enumerate(reversed(hist)):
            if prev == item:
                continue
            w = weight * position_weights[dist]
            yield prev, item, w
            if back:
                yield item, prev, w * back
        hist.append(item)
        if len(hist) > window:
            del hist[0]


def recent_pages(events: Sequence[UserEvent], params: dict[str, Any]) -> tuple[int, list[Hashable]]:
    """The index of the user's last view and the last ``window`` pages the model keeps."""
    window = int(params.get("window", 5))
    return events[-1].index, [e.page for e in events[-window:]]


def strongest(row: Iterable[tuple[Hashable, float]], n: int) -> list[tuple[Hashable, float]]:
    """The ``n`` heaviest ``(page, weight)``, heaviest first; ties by page name (stable runs)."""
    return heapq.nlargest(n, row, key=lambda kv: (kv[1], str(kv[0])))


def row_length(params: dict[str, Any]) -> int:
    """Links kept per source page: an online row is pruned only past twice ``max_neighbours``."""
    return 2 * int(Covisitation(**params).max_neighbours)


@dataclass
class CovisitStatistics:
    """Everything :func:`build_covisitation` needs, aggregated over the log.

    ``rows`` hold the ``2 * max_neighbours`` strongest links of each source page, ``out`` the
    total weight that left each page (every link, pruned or not), ``popularity`` each
    page's decayed views in order of first view, ``histories`` the kept users' last pages
    from least to most recently active.
    """

    n_events: int
    link_origin: float | None
    pop_origin: float | None
    rows: dict[Hashable, list[tuple[Hashable, float]]] = field(default_factory=dict)
    out: dict[Hashable, float] = field(default_factory=dict)
    popularity: list[tuple[Hashable, float]] = field(default_factory=list)
    histories: list[tuple[Hashable, list[Hashable]]] = field(default_factory=list)


def build_covisitation(params: dict[str, Any], stats: CovisitStatistics) -> Covisitation:
    """A :class:`Covisitation` with ``params`` in the state ``stats`` describe.

    Reaches into the model's private state on purpose: this module is the model's bulk
    learning path and lives beside it (the online ``learn_one`` is the other).
    """
    model = Covisitation(**params)
    n = stats.n_events
    model.n_events_learned = n
    model._clock._n = n
    model._clock._origin = stats.link_origin
    # A page whose every link decayed to 0.0 (underflow) has nothing left to serve.
    model._neighbours = {
        src: dict(row) for src, row in stats.rows.items() if row and stats.out.get(src, 0.0) > 0
    }
    model._out = {src: w for src, w in stats.out.items() if src in model._neighbours}
    model._histories = OrderedDict(
        (user, list(pages[-model.window :])) for user, pages in stats.histories[-model.max_users :]
    )
    pop = model._popularity
    pop.n_events_learned = n
    pop._clock._n = n
    pop._clock._origin = stats.pop_origin
    pop._counts = dict(stats.popularity)
    pop._total = math.fsum(pop._counts.values())
    top = strongest(pop._counts.items(), pop.top_m)
    pop._top = dict(top)
    pop._top_min = min(pop._top.values()) if top else 0.0
    pop._top_sorted = None
    return model


def statistics_in_memory(
    events: Sequence[tuple[Hashable, Hashable, int]], params: dict[str, Any]
) -> CovisitStatistics:
    """:class:`CovisitStatistics` of ``(user, page, ts_ms)`` events in learning order.

    The reference the distributed job is tested against, and handy for small logs.

    >>> views = [(u, p, 0) for u in ("a", "b") for p in ("home", "news", "sport")]
    >>> model = build_covisitation({}, statistics_in_memory(views, {}))
    >>> [page for page, _ in model.recommend("c", k=2, history=["news"])]
    ['sport', 'home']
    """
    link_clock, pop_clock = clocks_of(params)
    n = len(events)
    times_link = [link_clock.time_of(i, ts) for i, (_, _, ts) in enumerate(events)]
    times_pop = [pop_clock.time_of(i, ts) for i, (_, _, ts) in enumerate(events)]
    link_origin = link_clock.final_origin(n, times_link[0], _after(times_link)) if n else None
    pop_origin = pop_clock.final_origin(n, times_pop[0], _after(times_pop)) if n else None
    by_user: dict[Hashable, list[UserEvent]] = {}
    popularity: dict[Hashable, float] = {}
    for i, (user, page, ts) in enumerate(events):
        by_user.setdefault(user, []).append(UserEvent(i, page, ts))
        popularity[page] = popularity.get(page, 0.0) + pop_clock.weight(times_pop[i], pop_origin)
    sums: dict[Hashable, dict[Hashable, float]] = {}
    for seq in by_user.values():
        for src, dst, w in user_transitions(seq, params, link_clock, link_origin):
            row = sums.setdefault(src, {})
            row[dst] = row.get(dst, 0.0) + w
    kept = row_length(params)
    last = sorted((*recent_pages(seq, params), user) for user, seq in by_user.items())
    return CovisitStatistics(
        n_events=n,
        link_origin=link_origin,
        pop_origin=pop_origin,
        rows={src: strongest(row.items(), kept) for src, row in sums.items()},
        out={src: math.fsum(row.values()) for src, row in sums.items()},
        popularity=list(popularity.items()),
        histories=[(user, pages) for _, pages, user in last],
    )


def _after(times: Sequence[float]) -> Callable[[float], float | None]:
    def first_after(t: float) -> float | None:
        i = bisect.bisect_right(times, t)
        return times[i] if i < len(times) else None

    return first_after


# -- columns: the same statistics with numpy, pair counting split by user -----------------


@dataclass
class OrderedEvents:
    """A log in learning order as columns: user and page codes into string tables, times.

    ``pages`` is sorted, so comparing page codes compares page names (the tie-break of
    :func:`strongest`). About 16 bytes per event plus the tables.

    >>> log = OrderedEvents.from_rows([("u1", "b", 5), ("u2", "a", 6), ("u1", "a", 7)])
    >>> log.pages, log.page.tolist(), log.rows(1)
    (['a', 'b'], [1, 0, 0], [('u2', 'a', 6), ('u1', 'a', 7)])
    """

    users: list[str]
    pages: list[str]
    user: np.ndarray  # int32 codes into users
    page: np.ndarray  # int32 codes into pages
    ts: np.ndarray  # int64 epoch ms

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, int]]) -> OrderedEvents:
        """``(user, page, ts_ms)`` rows, already in learning order."""
        user_index: dict[str, int] = {}
        page_index: dict[str, int] = {}
        users, pages, times = [], [], []
        for user, page, ts in rows:
            users.append(user_index.setdefault(user, len(user_index)))
            pages.append(page_index.setdefault(page, len(page_index)))
            times.append(ts)
        table, codes = sorted_table(list(page_index), np.asarray(pages, dtype=np.int32))
        return cls(
            list(user_index),
            table,
            np.asarray(users, dtype=np.int32),
            codes,
            np.asarray(times, dtype=np.int64),
        )

    def rows(self, start: int = 0, stop: int | None = None) -> list[tuple[str, str, int]]:
        """Events ``[start, stop)`` as ``(user, page, ts_ms)``, in learning order."""
        users, pages = self.users, self.pages
        return [
            (users[u], pages[p], t)
            for u, p, t in zip(
                self.user[start:stop].tolist(),
                self.page[start:stop].tolist(),
                self.ts[start:stop].tolist(),
                strict=True,
            )
        ]

    def pages_before(self, stop: int, users: Collection[str]) -> dict[str, list[str]]:
        """Each of ``users``' pages among events ``[0, stop)``, oldest first."""
        index = {name: i for i, name in enumerate(self.users)}
        wanted = np.fromiter((index[u] for u in users if u in index), np.int64)
        user = self.user[:stop]
        picked = np.flatnonzero(np.isin(user, wanted))
        by_user: dict[str, list[str]] = {}
        for u, p in zip(user[picked].tolist(), self.page[picked].tolist(), strict=True):
            by_user.setdefault(self.users[u], []).append(self.pages[p])
        return by_user


def sorted_table(names: list[str], codes: np.ndarray) -> tuple[list[str], np.ndarray]:
    """``names`` sorted and ``codes`` (into ``names``) renumbered into the sorted table."""
    order = sorted(range(len(names)), key=names.__getitem__)
    renumber = np.empty(len(names), dtype=np.int32)
    renumber[order] = np.arange(len(names), dtype=np.int32)
    return [names[i] for i in order], renumber[codes] if len(codes) else codes


#: ``(mapper, reducer, slices, n_buckets)`` -> the reducer's results: each slice is mapped
#: to ``(bucket, part)`` pairs and each bucket's parts are reduced together (by Spark tasks
#: with a shuffle in between, or :func:`_map_reduce_locally`).
MapReduce = Callable[
    [Callable[[Any], list[tuple[int, Any]]], Callable[[list[Any]], Any], list[Any], int],
    list[Any],
]


def _map_reduce_locally(
    mapper: Callable[[Any], list[tuple[int, Any]]],
    reducer: Callable[[list[Any]], Any],
    slices: list[Any],
    n_buckets: int,
) -> list[Any]:
    buckets: dict[int, list[Any]] = {b: [] for b in range(n_buckets)}
    for s in slices:
        for bucket, part in mapper(s):
            buckets[bucket].append(part)
    return [reducer(parts) for parts in buckets.values()]


def bulk_statistics(
    events: OrderedEvents,
    n_prefix: int,
    params: dict[str, Any],
    map_reduce: MapReduce = _map_reduce_locally,
    n_slices: int = 1,
) -> CovisitStatistics:
    """:class:`CovisitStatistics` of events ``[0, n_prefix)``, with numpy.

    The events are cut into ``n_slices`` slices by user (each user's views whole and in
    order); ``map_reduce`` counts each slice's pairs (:func:`~online_model.models.covisit.pairs.\
pair_buckets`) and keeps the strongest links of each bucket of source pages
    (:func:`~online_model.models.covisit.pairs.strongest_links`); the rest is a handful of
    vectorised passes on the caller's side. Same statistics as
    :func:`statistics_in_memory` (to float rounding).
    """
    if n_prefix <= 0:
        return CovisitStatistics(0, None, None)
    link_clock, pop_clock = clocks_of(params)
    user, page, ts = events.user[:n_prefix], events.page[:n_prefix], events.ts[:n_prefix]
    n_pages = len(events.pages)
    link_times = _times(link_clock, ts)
    link_origin = _origin(link_clock, link_times)
    link_weight = _weights(link_clock, link_times, link_origin)
    pop_times = _times(pop_clock, ts)
    pop_origin = _origin(pop_clock, pop_times)
    pop_weight = _weights(pop_clock, pop_times, pop_origin)

    # Stable: within a user, learning order stays.
    by_user = np.argsort(user, kind="stable")
    n_slices = max(1, min(n_slices, len(events.users)))
    slice_of = user[by_user] % n_slices
    slices = []
    for s in range(n_slices):
        picked = by_user[slice_of == s]
        slices.append((user[picked], page[picked], link_weight[picked]))
    mapper = partial(
        pair_buckets,
        window=int(params.get("window", 5)),
        decay=float(params.get("decay_position", 0.6)),
        back=float(params.get("backward_weight", 0.5)),
        n_pages=n_pages,
        n_buckets=n_slices,
    )
    reducer = partial(strongest_links, n_pages=n_pages, kept=row_length(params))
    links = map_reduce(mapper, reducer, slices, n_slices)
    names = events.pages
    rows: dict[Hashable, list[tuple[Hashable, float]]] = {}
    out: dict[Hashable, float] = {}
    for src, dst, weight, sources, totals in links:
        for s, d, w in zip(src.tolist(), dst.tolist(), weight.tolist(), strict=True):
            row = rows.get(names[s])
            if row is None:
                row = rows[names[s]] = []
            row.append((names[d], w))
        out.update(zip([names[s] for s in sources.tolist()], totals.tolist(), strict=True))

    counts = np.bincount(page, weights=pop_weight, minlength=n_pages)
    seen, first = np.unique(page, return_index=True)
    by_first = seen[np.argsort(first)].tolist()
    max_users = int(params.get("max_users", 100_000))
    return CovisitStatistics(
        n_events=n_prefix,
        link_origin=link_origin,
        pop_origin=pop_origin,
        rows=rows,
        out=out,
        popularity=[(names[p], float(counts[p])) for p in by_first],
        histories=_last_pages(events, user[by_user], page[by_user], by_user, params, max_users),
    )


def _last_pages(
    events: OrderedEvents,
    user: np.ndarray,
    page: np.ndarray,
    index: np.ndarray,
    params: dict[str, Any],
    max_users: int,
) -> list[tuple[Hashable, list[Hashable]]]:
    """:func:`recent_pages` of the ``max_users`` most recently active users, least recent
    first; the arguments are sorted by user, then learning order (``index``)."""
    window = int(params.get("window", 5))
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    ends = np.r_[starts[1:], len(user)]
    last = index[ends - 1]
    kept = np.argsort(last)[-max_users:] if max_users > 0 else np.empty(0, np.int64)
    pages, names = page.tolist(), events.pages
    return [
        (events.users[u], [names[p] for p in pages[max(s, e - window) : e]])
        for u, s, e in zip(
            user[starts[kept]].tolist(), starts[kept].tolist(), ends[kept].tolist(), strict=True
        )
    ]


def _times(clock: DecayClock, ts: np.ndarray) -> np.ndarray:
    """:meth:`DecayClock.time_of` of every event, in learning order."""
    if clock.unit == "seconds":
        return ts.astype(np.float64) / 1000.0
    return np.arange(len(ts), dtype=np.float64)


def _origin(clock: DecayClock, times: np.ndarray) -> float | None:
    if clock.unit == "events":
        return clock.final_origin(len(times), 0.0, events_first_after(len(times)))
    return clock.final_origin(len(times), float(times[0]), _after(np.sort(times).tolist()))


def _weights(clock: DecayClock, times: np.ndarray, origin: float | None) -> np.ndarray:
    """:meth:`DecayClock.weight` of every event against ``origin``."""
    if not clock.half_life or origin is None:
        return np.ones(len(times))
    return np.power(2.0, (times - origin) / clock.half_life)
