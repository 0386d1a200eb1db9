"""The merge of co-visitation parts, kept up to date as deltas: O(change), not O(model).

:func:`~online_model.models.shard_merge.merge_states` builds the merge from every row of
every part. Between two merges most pages were not viewed, so :class:`MergedChain`
keeps the merged state and recomputes only the rows (and popularity counts) that a part
changed since the last merge, from every part's current row, giving a delta in the
layout :func:`~online_model.models.covisit.delta.build_delta` writes: scorers apply it as
they apply one trainer's.

Frames. Values are kept in one forward-decayed frame (``origin`` fixed until the next
full merge): each part's weights are brought to its own "now" and scaled by the merged
clock's weight of "now" (``2 ** ((T - 1 - origin) / half_life)``, ``T`` the events of all
parts), so a row nobody touched keeps its values, as one model's does, while touched
rows take the new ones. In ``unit="seconds"`` the parts' clocks share the timestamps and
the frame is fixed: exact. A full merge (a new frame) is needed when a part's page table
is not the previous one extended (a forgotten page), on the first merge, and when the
frame's exponent grows large (as :class:`~online_model.models.decay.ForwardDecay`
rescales).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from online_model.models.covisit.mixture import clamped
from online_model.models.covisit.model import Covisitation
from online_model.models.popularity import DecayedPopularity
from online_model.models.shard_merge import keep_strongest, merge_states
from online_model.state import ModelState, id_table, indptr_of, take_rows

#: Start a new frame (a full merge) past this exponent (ForwardDecay rescales past 256).
MAX_FRAME_EXPONENT = 200.0


class MergedChain:
    """The merged state of a co-visitation model's parts, and its deltas."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        defaults = Covisitation()
        self.params = dict(params)
        self.unit = str(self.params.get("unit", defaults.unit))
        self.half_life = float(self.params.get("half_life", defaults.half_life) or 0)
        pop = self.params.get("pop_half_life", defaults.pop_half_life)
        self.pop_half_life = float(self.half_life if pop is None else pop or 0)
        self.max_links = 2 * int(self.params.get("max_neighbours", defaults.max_neighbours))
        self.top_m = DecayedPopularity().top_m
        self.state: ModelState | None = None
        self._parts: dict[int, ModelState] = {}
        self._part_rows: dict[int, np.ndarray] = {}  # part row -> merged row
        self._pages: list[str] = []
        self._index: dict[str, int] = {}
        self._origins: tuple[float | None, float | None] = (None, None)

    # -- the two ways to a new merged state ---------------------------------------------
    def update(
        self, parts: Mapping[int, tuple[Mapping[str, Any], ModelState]]
    ) -> tuple[ModelState, ModelState | None]:
        """The merged state of ``parts`` (partition -> its params and state), and the
        delta from the previous one (None: this is a full merge)."""
        delta = None if self.state is None else self._delta(parts)
        if delta is None:
            return self._full(parts), None
        assert self.state is not None
        self.state = Covisitation.apply_state_delta(self.state, delta)
        self._parts = {p: s for p, (_, s) in parts.items()}
        return self.state, delta

    def _full(self, parts: Mapping[int, tuple[Mapping[str, Any], ModelState]]) -> ModelState:
        ordered = sorted(parts)
        state = merge_states(Covisitation, self.params, [parts[p] for p in ordered])
        self.state = state
        self._pages = list(state.table("pages"))
        self._index = {page: i for i, page in enumerate(self._pages)}
        self._parts = {p: s for p, (_, s) in parts.items()}
        self._part_rows = {p: self._rows_of(s.table("pages")) for p, s in self._parts.items()}
        graph_clock = state.values["clock"]
        pop_clock = state.values["popularity"]["clock"]
        self._origins = (graph_clock.get("origin"), pop_clock.get("origin"))
        return state

    def _rows_of(self, pages: list[str]) -> np.ndarray:
        return np.fromiter((self._index[p] for p in pages), np.int64, len(pages))

    # -- a delta --------------------------------------------------------------------------
    def _delta(
        self, parts: Mapping[int, tuple[Mapping[str, Any], ModelState]]
    ) -> ModelState | None:
        if set(parts) != set(self._parts):
            return None
        total = sum(int(s.values["n_events_learned"]) for _, s in parts.values())
        graph = self._factors(parts, "clock", self._origins[0], self.half_life, total)
        pop = self._factors(parts, "popularity", self._origins[1], self.pop_half_life, total)
        if graph is None or pop is None:
            return None
        n_before = len(self._pages)
        rows: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        for p, (_, new) in parts.items():
            old = self._parts[p]
            if new is old:
                continue
            new_pages, old_pages = new.table("pages"), old.table("pages")
            if new_pages[: len(old_pages)] != old_pages:
                return None  # a page left the part (forgotten): only a full merge will do
            for page in new_pages[len(old_pages) :]:
                if page not in self._index:
                    self._index[page] = len(self._pages)
                    self._pages.append(page)
            extended = np.concatenate(
                [self._part_rows[p], self._rows_of(new_pages[len(old_pages) :])]
            )
            self._part_rows[p] = extended
            n_old = len(old_pages)
            grown = np.arange(n_old, len(new_pages))
            out_new, out_old = new.array("out", np.float64), old.array("out", np.float64)
            rows.append(extended[np.r_[np.flatnonzero(out_new[:n_old] != out_old), grown]])
            c_new = new.sub("popularity").array("counts", np.float64)
            c_old = old.sub("popularity").array("counts", np.float64)
            counts.append(extended[np.r_[np.flatnonzero(c_new[:n_old] != c_old), grown]])
        changed_rows = np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64)
        changed_pages = np.unique(np.concatenate(counts)) if counts else np.zeros(0, np.int64)
        if 2 * len(changed_rows) > len(self._pages):
            return None  # most of the graph changed: a full merge is no dearer
        return self._build(parts, changed_rows, changed_pages, n_before, graph, pop, total)

    def _factors(
        self,
        parts: Mapping[int, tuple[Mapping[str, Any], ModelState]],
        which: str,
        origin: float | None,
        half_life: float,
        total: int,
    ) -> tuple[dict[int, float], dict[str, Any]] | None:
        """Per part, the factor into the merged frame; and the merged clock. None: the
        frame is worn out (a full merge starts a new one)."""
        clocks = {
            p: (s.values["clock"] if which == "clock" else s.values["popularity"]["clock"])
            for p, (_, s) in parts.items()
        }
        if not half_life or origin is None:
            return {p: 1.0 for p in parts}, {"n": total, "origin": origin}
        factors: dict[int, float] = {}
        if self.unit == "seconds":
            for p, clock in clocks.items():
                o = clock.get("origin")
                factors[p] = 1.0 if o is None else 2.0 ** ((float(o) - origin) / half_life)
            newest = max(
                (float(c["origin"]) for c in clocks.values() if c.get("origin") is not None),
                default=origin,
            )
            if (newest - origin) / half_life > MAX_FRAME_EXPONENT:
                return None
            return factors, {"n": total, "origin": origin}
        scale = (total - 1 - origin) / half_life
        if scale > MAX_FRAME_EXPONENT:
            return None
        for p, (params, _) in parts.items():
            clock = clocks[p]
            o = clock.get("origin")
            key = "half_life" if which == "clock" else "pop_half_life"
            part_half = params.get(key)
            if key == "pop_half_life" and part_half is None:
                part_half = params.get("half_life")
            if o is None or not part_half:
                factors[p] = 2.0**scale
                continue
            now = float(int(clock["n"]) - 1)
            factors[p] = 2.0 ** (scale - (now - float(o)) / float(part_half))
        return factors, {"n": total, "origin": origin}

    def _build(
        self,
        parts: Mapping[int, tuple[Mapping[str, Any], ModelState]],
        rows: np.ndarray,
        pages: np.ndarray,
        n_before: int,
        graph: tuple[dict[int, float], dict[str, Any]],
        pop: tuple[dict[int, float], dict[str, Any]],
        total: int,
    ) -> ModelState:
        n = len(self._pages)
        local: dict[int, np.ndarray] = {}
        for p in parts:
            inverse = np.full(n, -1, np.int64)
            inverse[self._part_rows[p]] = np.arange(len(self._part_rows[p]))
            local[p] = inverse
        # The changed rows, from every part's current row.
        keys, weights = [], []
        out = np.zeros(len(rows), np.float64)
        for p, (_, state) in parts.items():
            factor = graph[0][p]
            at = local[p][rows]
            mine = at >= 0
            if not mine.any():
                continue
            indptr, (dst, weight) = take_rows(
                state.array("neighbours.indptr", np.int64),
                [
                    state.array("neighbours.page", np.int32),
                    state.array("neighbours.weight", np.float64),
                ],
                at[mine],
            )
            src = np.repeat(rows[mine], np.diff(indptr))
            keys.append(src * n + self._part_rows[p][dst])
            weights.append(weight * factor)
            out[mine] += state.array("out", np.float64)[at[mine]] * factor
        src, dst, weight = keep_strongest(keys, weights, n, self.max_links)
        position = np.searchsorted(rows, src)
        # Popularity: the changed counts, the whole top list.
        assert self.state is not None
        base = self.state.sub("popularity")
        all_counts = np.concatenate([base.array("counts", np.float64), np.zeros(n - n_before)])
        new_counts = np.zeros(len(pages), np.float64)
        for p, (_, state) in parts.items():
            at = local[p][pages]
            mine = at >= 0
            sub = state.sub("popularity").array("counts", np.float64)
            new_counts[mine] += sub[at[mine]] * pop[0][p]
        all_counts[pages] = new_counts
        top = np.argsort(-all_counts, kind="stable")[: self.top_m].astype(np.int64)
        mixtures = [
            (float(s.values["mixture"]), int(s.values["n_events_learned"]))
            for _, s in parts.values()
        ]
        mixture = clamped(sum(m * e for m, e in mixtures) / total) if total else clamped(0.1)
        delta = ModelState(
            values={
                "n_events_learned": total,
                "clock": graph[1],
                "mixture": mixture,
                "n_pages": n,
                "n_users": 0,
            },
            arrays={
                "rows": rows.astype(np.int64),
                "out": out,
                "neighbours.indptr": indptr_of(np.bincount(position, minlength=len(rows)).tolist()),
                "neighbours.page": dst.astype(np.int32),
                "neighbours.weight": weight,
                "histories.indptr": np.zeros(1, np.int64),
                "histories.page": np.zeros(0, np.int32),
            },
            strings={"pages": id_table(self._pages[n_before:], "page"), "users": []},
        )
        delta.nest(
            "popularity",
            ModelState(
                values={
                    "n_events_learned": total,
                    "total": float(all_counts.sum()),
                    "top_min": float(all_counts[top].min()) if len(top) else 0.0,
                    "clock": pop[1],
                    "n_items": n,
                },
                arrays={
                    "changed": pages.astype(np.int64),
                    "counts": new_counts,
                    "top": top,
                    "pages": np.arange(n_before, n, dtype=np.int64),
                },
            ),
        )
        return delta
