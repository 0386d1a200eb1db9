"""Co-visitation learned in bulk: the statistics of :class:`Covisitation`, then the model.

:class:`~online_model.covisit.Covisitation` learns one event at a time. Its state after a
sequence of events is a function of per-user page sequences and of each event's place in
the global learning order, so it can also be computed in bulk, split by user:

1. number every event in learning order (``index``, 0-based) and note its time;
2. the forward-decay clocks (links and popularity) reach a final origin that depends only
   on the sequence of times: :meth:`DecayClock.final_origin` replays their rescales;
3. per user, in order, :func:`user_transitions` emits exactly the ``(src, dst, weight)``
   links ``learn_one`` would add, with each event's weight taken against the final origin
   (the online model multiplies earlier weights by the same rescale factors instead);
4. sums per pair and per source, popularity per page, and the users' last pages are
   aggregated (by Spark in :mod:`streams.retrain`, or by plain Python in tests);
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

No I/O here: the module is shipped to executors and must only need the standard library.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from online_model.covisit import Covisitation
from online_model.decay import _MAX_EXPONENT


@dataclass(frozen=True)
class DecayClock:
    """The arithmetic of :class:`~online_model.decay.ForwardDecay`, for a known sequence.

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
    import bisect

    def first_after(t: float) -> float | None:
        i = bisect.bisect_right(times, t)
        return times[i] if i < len(times) else None

    return first_after
