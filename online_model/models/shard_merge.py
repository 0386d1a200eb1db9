"""Models learned in parts, one per partition of the log, and the merge of the parts.

A sharded trainer learns each partition of ``page-views`` into a model of its own (the
key is the user, so a user's events, and their recent pages, stay in one part). What
scorers serve is :func:`merge_states` of the parts' states: a state of the same class
and parameters as one trainer's, which every reader of snapshots already knows.

What adds up, and what does not:

* **Counts are exact.** Transition weights, each page's outgoing weight (pruned mass
  included) and popularity counts are sums over events, so the merge sums them (with
  decay off, ``merged == one model`` on the same events up to float rounding).
* **Decay.** A part's clock in ``unit="events"`` counts only its partition's events, so
  each part learns with its half-lives divided by the number of partitions
  (:func:`partition_params`: right when partitions get equal traffic, which hashing
  users gives on average), and the merge decays every part's weights to its own "now"
  before summing. With ``unit="seconds"`` clocks read the events' timestamps and the
  parts are brought to one origin: exact.
* **Pruning.** Each part keeps at most ``2 * max_neighbours`` links per page, so a link
  pruned in one part is missing from the sum; the merge keeps the ``2 * max_neighbours``
  strongest of each row (one model's bound).
* **The popularity weight of the mixture** is learned by each part on its users; the
  merge takes the mean weighted by events.
* **Users' recent pages** stay in the parts (they are what a part needs to learn on);
  the merged state holds none (scorers read histories from Redis, not from the model).

Only models whose state adds up can be sharded (:func:`check_shardable`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from online_model.base import Recommender
from online_model.errors import ConfigurationError, ModelError
from online_model.models.covisit.mixture import clamped
from online_model.models.covisit.model import Covisitation
from online_model.models.popularity import DecayedPopularity
from online_model.state import ModelState, id_table

#: The classes whose learned state is a sum over events (and so can be learned in parts).
SHARDABLE: tuple[type, ...] = (Covisitation, DecayedPopularity)

#: One part: its constructor parameters (half-lives per :func:`partition_params`) and state.
Part = tuple[Mapping[str, Any], ModelState]


def check_shardable(model: Recommender | type) -> None:
    """Raise :class:`ConfigurationError` unless ``model`` (or class) can learn in parts."""
    cls = model if isinstance(model, type) else type(model)
    if cls not in SHARDABLE:
        names = ", ".join(c.__name__ for c in SHARDABLE)
        raise ConfigurationError(
            f"{cls.__name__} cannot be learned by trainer shards: only models whose state "
            f"is a sum over events can ({names}); run one trainer (no STREAMREC_TRAINER_SHARD)"
        )


def partition_params(cls: type, params: Mapping[str, Any], n_partitions: int) -> dict[str, Any]:
    """The parameters of one partition's part: ``params`` with half-lives counted in
    events divided by ``n_partitions`` (a part sees about 1/n of the events).

    >>> partition_params(DecayedPopularity, {"half_life": 900}, 3)["half_life"]
    300.0
    >>> partition_params(DecayedPopularity, {"half_life": 900, "unit": "seconds"}, 3)
    {'half_life': 900, 'unit': 'seconds'}
    """
    check_shardable(cls)
    out = dict(params)
    defaults = cls().__dict__
    if out.get("unit", defaults["unit"]) != "events" or n_partitions <= 1:
        return out
    names = ["half_life"] + (["pop_half_life"] if cls is Covisitation else [])
    for name in names:
        value = out.get(name, defaults[name])
        if value:
            out[name] = float(value) / n_partitions
    return out


def merge_states(cls: type, params: Mapping[str, Any], parts: Sequence[Part]) -> ModelState:
    """The state of a ``cls(**params)`` that learned every part's events (see the module
    docstring for what is exact); :meth:`from_state` of ``cls`` reads it.

    >>> parts = []
    >>> for users in (["a", "b"], ["c"]):
    ...     model = Covisitation(half_life=0, pop_half_life=0)
    ...     for user in users:
    ...         for page in ["home", "news", "sport"]:
    ...             model.learn_one(user, page)
    ...     parts.append((model._get_params(), model.state_arrays()))
    >>> merged = Covisitation.from_state(
    ...     {"half_life": 0, "pop_half_life": 0},
    ...     merge_states(Covisitation, {"half_life": 0, "pop_half_life": 0}, parts),
    ... )
    >>> merged.n_events_learned, merged._popularity.probability("home")
    (9, 0.3333333333333333)
    """
    check_shardable(cls)
    if cls is DecayedPopularity:
        table = _page_table(part.table("pages") for _, part in parts)
        merged = _merge_popularity(
            [(p, s, s.table("pages")) for p, s in parts], table, _top_m(params)
        )
        merged.strings["pages"] = id_table(table, "page")
        return merged
    return _merge_covisitation(params, parts)


def _top_m(params: Mapping[str, Any]) -> int:
    return int(params.get("top_m", DecayedPopularity().top_m))


def _page_table(tables: Any) -> dict[str, int]:
    """Every part's pages, each once, in the order parts first list them."""
    index: dict[str, int] = {}
    for table in tables:
        for page in table:
            index.setdefault(page, len(index))
    return index


def _decay(
    clocks: Sequence[Mapping[str, Any]], half_lives: Sequence[float], unit: str
) -> tuple[list[float], dict[str, Any]]:
    """Factors that bring each part's decayed weights to one frame, and that frame's clock.

    ``seconds``: the frame of the newest origin (clocks read the same timestamps; exact).
    ``events``: each part's "now" (its newest event weighs 1), the merged clock's too.
    """
    n = sum(int(c["n"]) for c in clocks)
    origins = [c.get("origin") for c in clocks]
    if not any(half_lives) or all(o is None for o in origins):
        return [1.0] * len(clocks), {"n": n, "origin": None}
    factors: list[float] = []
    if unit == "seconds":
        frame = max(float(o) for o in origins if o is not None)
        for origin, half_life in zip(origins, half_lives, strict=True):
            if origin is None or not half_life:
                factors.append(1.0)
            else:
                factors.append(2.0 ** ((float(origin) - frame) / half_life))
        return factors, {"n": n, "origin": frame}
    for clock, origin, half_life in zip(clocks, origins, half_lives, strict=True):
        if origin is None or not half_life:
            factors.append(1.0)
            continue
        now = float(int(clock["n"]) - 1)
        factors.append(2.0 ** (-(now - float(origin)) / half_life))
    return factors, {"n": n, "origin": float(n - 1)}


def _merge_popularity(
    parts: Sequence[tuple[Mapping[str, Any], ModelState, list[str]]],
    table: Mapping[str, int],
    top_m: int,
) -> ModelState:
    """Popularity counts summed over ``table``; ``parts`` are (params, state, the pages of
    the state's counts) with ``half_life``/``unit`` in params."""
    unit = str(parts[0][0].get("unit", "events")) if parts else "events"
    clocks = [state.values["clock"] for _, state, _ in parts]
    default = DecayedPopularity().half_life
    half_lives = [float(p.get("half_life", default) or 0) for p, _, _ in parts]
    factors, clock = _decay(clocks, half_lives, unit)
    counts = np.zeros(len(table), np.float64)
    total = 0.0
    events = 0
    for (_, state, pages), factor in zip(parts, factors, strict=True):
        rows = np.fromiter((table[p] for p in pages), np.int64, len(pages))
        part = state.array("counts", np.float64)
        if len(part) != len(rows):
            raise ModelError("popularity part: counts and pages differ in length")
        np.add.at(counts, rows, part * factor)
        total += float(state.values["total"]) * factor
        events += int(state.values["n_events_learned"])
    top = np.argsort(-counts, kind="stable")[:top_m].astype(np.int64)
    return ModelState(
        values={
            "n_events_learned": events,
            "total": total,
            "top_min": float(counts[top].min()) if len(top) else 0.0,
            "clock": clock,
        },
        arrays={"counts": counts, "top": top},
    )


def _merge_covisitation(params: Mapping[str, Any], parts: Sequence[Part]) -> ModelState:
    defaults = Covisitation()
    unit = str(params.get("unit", defaults.unit))
    max_links = 2 * int(params.get("max_neighbours", defaults.max_neighbours))
    index = _page_table(state.table("pages") for _, state in parts)
    pages = list(index)
    n = len(pages)
    # The graph: every part's links on the merged page table, decayed to one frame.
    clocks = [state.values["clock"] for _, state in parts]
    half_lives = [float(p.get("half_life", defaults.half_life) or 0) for p, _ in parts]
    factors, clock = _decay(clocks, half_lives, unit)
    out = np.zeros(n, np.float64)
    keys: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for (_, state), factor in zip(parts, factors, strict=True):
        table = state.table("pages")
        rows = np.fromiter((index[p] for p in table), np.int64, len(table))
        indptr = state.array("neighbours.indptr", np.int64)
        dst = state.array("neighbours.page", np.int32)
        src = np.repeat(rows, np.diff(indptr))
        keys.append(src * n + rows[dst])
        weights.append(state.array("neighbours.weight", np.float64) * factor)
        np.add.at(out, rows, state.array("out", np.float64) * factor)
    src, dst, weight = keep_strongest(keys, weights, n, max_links)
    mixtures = [(float(s.values["mixture"]), int(s.values["n_events_learned"])) for _, s in parts]
    events = sum(e for _, e in mixtures)
    mixture = (
        clamped(sum(m * e for m, e in mixtures) / events)
        if events
        else clamped(float(params.get("backoff", defaults.backoff)))
    )
    state = ModelState(
        values={"n_events_learned": events, "clock": clock, "mixture": mixture},
        arrays={
            "out": out,
            "neighbours.indptr": np.concatenate(
                [[0], np.cumsum(np.bincount(src, minlength=n))]
            ).astype(np.int64),
            "neighbours.page": dst.astype(np.int32),
            "neighbours.weight": weight,
            "histories.indptr": np.zeros(1, np.int64),
            "histories.page": np.zeros(0, np.int32),
        },
        strings={"pages": id_table(pages, "page"), "users": []},
    )
    # Popularity (its own clock and half-life), its items in the page table's order.
    pop_parts = []
    for p, s in parts:
        sub = s.sub("popularity")
        table = s.table("pages")
        pop_rows = sub.array("pages", np.int64)
        pop_half_life = p.get("pop_half_life", defaults.pop_half_life)
        if pop_half_life is None:
            pop_half_life = p.get("half_life", defaults.half_life)
        pop_parts.append(
            ({"half_life": pop_half_life, "unit": unit}, sub, [table[i] for i in pop_rows.tolist()])
        )
    popularity = _merge_popularity(pop_parts, index, DecayedPopularity().top_m)
    popularity.arrays["pages"] = np.arange(n, dtype=np.int64)
    state.nest("popularity", popularity)
    return state


def keep_strongest(
    keys: list[np.ndarray], weights: list[np.ndarray], n: int, kept: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Links summed per (source, destination) page, at most ``kept`` per source (the
    strongest), grouped by source in destination order. Only the rows longer than
    ``kept`` are sorted by weight."""
    if not keys or not sum(len(k) for k in keys):
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float64)
    distinct, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    sums = np.bincount(inverse, weights=np.concatenate(weights), minlength=len(distinct))
    src, dst = distinct // n, distinct % n
    lengths = np.bincount(src, minlength=n)
    long = np.flatnonzero(lengths[src] > kept)
    if len(long):
        # One sort by (row, weight descending): each row's weights scaled into [0, 0.5)
        # below its number (one argsort of floats is several times a two-key lexsort).
        top = np.zeros(n, np.float64)
        np.maximum.at(top, src[long], sums[long])
        order = long[np.argsort(src[long] + 0.5 * (1.0 - sums[long] / top[src[long]]))]
        first = np.flatnonzero(np.r_[True, src[order][1:] != src[order][:-1]])
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
        keep = np.ones(len(src), bool)
        keep[order[rank >= kept]] = False
        src, dst, sums = src[keep], dst[keep], sums[keep]
    return src, dst, sums
