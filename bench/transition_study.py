"""Where the real purchase log's remaining hits are, and what transition variants give.

Run ``python -m bench.transition_study [--max-events N]``; writes
``bench/results/transition_study.{json,md}``. It reads the real log of
:mod:`bench.real_logs` (``retail``) under the protocol of ``streamrec evaluate`` (k=10,
history = last 50 pages, every earlier page of the user excluded) and reports:

* **where the hits are**: the share of scored events whose page the user bought before
  (never a hit under the protocol), whose page never co-occurred with the user's last 5
  pages (out of reach of any transition model), and hit@k of the study's baseline for
  k = 1 … 200 (what a perfect re-ranker of its top k would reach);
* **variants** of a co-visitation model, each one change to a baseline that reproduces the
  default ``covisit``'s hit@10 within 0.3 %: the weight of transitions into a page the user
  bought before, no transitions across a gap of more than an hour, scores divided by the
  page's long-term count ``** 0.1``, symmetric pairs (``backward = 1``), their
  combination, and a product of the recent pages' probabilities instead of their sum;
* **catalog structure**: the share of scored events whose product code is within 5 of the
  previous line's (a property of this log's stock codes, which the models do not use).

:class:`TransitionStudy` is a pure-Python copy of the default's learning and serving
without time decay or pruning (the real model's figures are in
``bench/results/robustness.md``), small enough to change one thing at a time. This is a
study, not a model: nothing here is served.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .real_logs import real_log

RESULTS = Path(__file__).parent / "results"
Event = tuple[Hashable, Hashable, int]


class TransitionStudy:
    """Co-visitation learning and serving with one switch per studied change."""

    def __init__(
        self,
        *,
        window: int = 5,
        decay_position: float = 0.6,
        backward: float = 0.5,
        n_recent: int = 5,
        recency: float = 0.5,
        n_candidates: int = 30,
        mix: float = 0.1,
        repeat_weight: float = 1.0,
        session_gap_ms: int | None = None,
        lift: float = 0.0,
        product_eps: float | None = None,
        pop_half_life: float = 1000.0,
    ) -> None:
        self.window, self.backward, self.n_recent = window, backward, n_recent
        self.recency, self.n_candidates, self.mix = recency, n_candidates, mix
        self.repeat_weight, self.session_gap_ms = repeat_weight, session_gap_ms
        self.lift, self.product_eps = lift, product_eps
        self.position_weights = [decay_position**d for d in range(window)]
        self.rows: dict[Hashable, dict[Hashable, float]] = defaultdict(lambda: defaultdict(float))
        self.out: dict[Hashable, float] = defaultdict(float)
        self.recent: dict[Hashable, list[Hashable]] = {}
        self.last_ts: dict[Hashable, int] = {}
        self.bought: dict[Hashable, set[Hashable]] = defaultdict(set)
        self.count: Counter[Hashable] = Counter()
        self.trending: dict[Hashable, float] = {}
        self.n = 0
        self._rate = math.log(2) / pop_half_life
        self._top: dict[Hashable, list[tuple[Hashable, float]]] = {}
        self._dirty: set[Hashable] = set()
        self._trending_top: list[tuple[Hashable, float]] = []
        self._trending_at = -1

    def learn(self, user: Hashable, page: Hashable, ts_ms: int) -> None:
        self.n += 1
        recent = self.recent.setdefault(user, [])
        if self.session_gap_ms is not None and ts_ms - self.last_ts.get(user, ts_ms) > (
            self.session_gap_ms
        ):
            recent.clear()
        weight = self.repeat_weight if page in self.bought[user] else 1.0
        for distance, earlier in enumerate(reversed(recent)):
            w = self.position_weights[distance] * weight
            if earlier == page or w == 0:
                continue
            self._add(earlier, page, w)
            if self.backward:
                self._add(page, earlier, w * self.backward)
        recent.append(page)
        del recent[: -self.window]
        self.last_ts[user] = ts_ms
        self.bought[user].add(page)
        self.count[page] += 1
        self.trending[page] = self.trending.get(page, 0.0) + math.exp(self._rate * self.n)

    def _add(self, src: Hashable, dst: Hashable, w: float) -> None:
        self.rows[src][dst] += w
        self.out[src] += w
        self._dirty.add(src)

    def row(self, page: Hashable) -> list[tuple[Hashable, float]]:
        """The page's strongest successors with their transition probabilities."""
        if page in self._dirty or page not in self._top:
            self._dirty.discard(page)
            row, out = self.rows.get(page, {}), self.out.get(page, 0.0)
            top = heapq.nlargest(self.n_candidates, row.items(), key=lambda kv: kv[1])
            self._top[page] = [(q, c / out) for q, c in top]
        return self._top[page]

    def recommend(self, history: Sequence[Hashable], k: int, exclude: set[Hashable]) -> list:
        recent: list[Hashable] = []
        for page in reversed(history):
            if page not in recent:
                recent.append(page)
                if len(recent) == self.n_recent:
                    break
        scores = self._product(recent) if self.product_eps is not None else self._sum(recent)
        ranked = heapq.nlargest(k + len(exclude), scores.items(), key=lambda kv: kv[1])
        out = [q for q, _ in ranked if q not in exclude][:k]
        for q, _ in self._trending():
            if len(out) == k:
                break
            if q not in exclude and q not in out:
                out.append(q)
        return out

    def _weighted(self, recent: list[Hashable]) -> tuple[dict[Hashable, float], float]:
        """The recent pages' successor probabilities summed with recency weights, and the
        sum of those weights."""
        scores: dict[Hashable, float] = defaultdict(float)
        total = 0.0
        for age, page in enumerate(recent):
            w = self.recency**age
            total += w
            for q, p in self.row(page):
                scores[q] += w * p
        return scores, total

    def _sum(self, recent: list[Hashable]) -> dict[Hashable, float]:
        scores, total = self._weighted(recent)
        for q in scores:
            scores[q] *= (1 - self.mix) / total / (self.count[q] ** self.lift if self.lift else 1)
        norm = sum(self.trending.values()) or 1.0
        for q, t in self._trending():
            scores[q] = scores.get(q, 0.0) + self.mix * t / norm
        return scores

    def _product(self, recent: list[Hashable]) -> dict[Hashable, float]:
        rows = [dict(self.row(page)) for page in recent]
        eps = self.product_eps or 0.0
        return {
            q: sum(self.recency**age * math.log(eps + r.get(q, 0.0)) for age, r in enumerate(rows))
            for q in set().union(*rows)
        }

    def _trending(self) -> list[tuple[Hashable, float]]:
        if self._trending_at != self.n // 200:
            self._trending_at = self.n // 200
            self._trending_top = heapq.nlargest(200, self.trending.items(), key=lambda kv: kv[1])
        return self._trending_top


#: What serves a scored event: (user, their last 50 pages, the pages excluded) -> the list.
Serve = Callable[[Hashable, list[Hashable], set[Hashable]], list[Hashable]]
#: What is counted beside the hit: (bucket, last 50 pages, page viewed, list, excluded).
Note = Callable[[str, list[Hashable], Hashable, list[Hashable], set[Hashable]], None]


@dataclass
class Tally:
    """Scored events, hits and reciprocal ranks per bucket, and the seconds they took."""

    n: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    rr: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    seconds: float = 0.0

    def overall(self, k: int) -> dict[str, Any]:
        scored = sum(self.n.values())
        return {
            f"hit@{k}": round(sum(self.hits.values()) / max(scored, 1), 4),
            f"mrr@{k}": round(sum(self.rr.values()) / max(scored, 1), 4),
            "scored": scored,
            "seconds": round(self.seconds, 1),
        }


def prequential(
    events: Sequence[Event],
    k: int,
    serve: Serve,
    learn: Callable[[Hashable, Hashable, int], None],
    note: Note | None = None,
    bucket: Callable[[int], str] = lambda _n_distinct: "all",
) -> Tally:
    """``streamrec evaluate``'s protocol: each event of a user with a history is served
    from their last 50 pages, every earlier page excluded, then learned. Counted per
    ``bucket`` of the number of distinct pages the user saw before."""
    tally = Tally()
    histories: dict[Hashable, list[Hashable]] = defaultdict(list)
    seen: dict[Hashable, set[Hashable]] = defaultdict(set)
    t0 = time.perf_counter()
    for user, page, ts in events:
        history, exclude = histories[user], seen[user]
        if history:
            b = bucket(len(exclude))
            tally.n[b] += 1
            recent = history[-50:]
            recs = serve(user, recent, exclude)
            if page in recs:
                tally.hits[b] += 1
                tally.rr[b] += 1 / (recs.index(page) + 1)
            if note is not None:
                note(b, recent, page, recs, exclude)
        learn(user, page, ts)
        history.append(page)
        exclude.add(page)
    tally.seconds = time.perf_counter() - t0
    return tally


def evaluate(model: TransitionStudy, events: Sequence[Event], k: int = 10) -> dict[str, Any]:
    """Prequential hit@k and MRR@k under ``streamrec evaluate``'s protocol."""

    def serve(_user: Hashable, recent: list[Hashable], exclude: set[Hashable]) -> list[Hashable]:
        return model.recommend(recent, k, exclude)

    return prequential(events, k, serve, model.learn).overall(k)


def where_the_hits_are(events: Sequence[Event]) -> dict[str, Any]:
    """Repeats, pages out of the transitions' reach, and the baseline's hit@k curve."""
    model = TransitionStudy()
    ks = (1, 5, 10, 20, 50, 100, 200)
    at_k: Counter[int] = Counter()
    scored = repeats = unreachable = adjacent = 0
    histories: dict[Hashable, list[Hashable]] = defaultdict(list)
    for user, page, ts in events:
        history = histories[user]
        if history:
            scored += 1
            if page in history:
                repeats += 1
            else:
                recent = list(dict.fromkeys(reversed(history)))[:5]
                if not any(page in model.rows.get(q, ()) for q in recent):
                    unreachable += 1
                recs = model.recommend(history[-50:], ks[-1], set(history))
                if page in recs:
                    rank = recs.index(page)
                    at_k.update(k for k in ks if rank < k)
                adjacent += _codes_within(history[-1], page, 5)
        model.learn(user, page, ts)
        history.append(page)
    share = 1 / max(scored, 1)
    return {
        "scored": scored,
        "repeat_share": round(repeats * share, 4),
        "no_cooccurrence_with_last5_share": round(unreachable * share, 4),
        "hit_at_k": {str(k): round(at_k[k] * share, 4) for k in ks},
        "code_within_5_of_previous_share": round(adjacent * share, 4),
    }


def _codes_within(a: Hashable, b: Hashable, gap: int) -> bool:
    ma, mb = re.match(r"\d+", str(a)), re.match(r"\d+", str(b))
    return bool(ma and mb and abs(int(ma.group()) - int(mb.group())) <= gap)


#: label -> the one change to the baseline
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "repeat targets weighted 0.5": {"repeat_weight": 0.5},
    "no transitions across a 1 h gap": {"session_gap_ms": 3_600_000},
    "divided by long-term count ** 0.1": {"lift": 0.1},
    "symmetric pairs (backward 1)": {"backward": 1.0},
    "the three above with backward 1": {
        "backward": 1.0,
        "repeat_weight": 0.5,
        "session_gap_ms": 3_600_000,
    },
    "product of recent pages' probabilities (eps 0.03, backward 1)": {
        "backward": 1.0,
        "product_eps": 0.03,
    },
}


def markdown(result: dict[str, Any]) -> str:
    where = result["where"]
    lines = [
        "# Transition variants on the real purchase log",
        "",
        f"`python -m bench.transition_study{result['args']}` ({result['n_events']:,} events, "
        f"{where['scored']:,} scored; {result['date']}).",
        "",
        "| variant | hit@10 | MRR@10 | vs baseline |",
        "|---|---:|---:|---:|",
    ]
    base = result["variants"]["baseline"]["hit@10"]
    for label, r in result["variants"].items():
        lines.append(
            f"| {label} | {r['hit@10']:.4f} | {r['mrr@10']:.4f} | "
            f"{(r['hit@10'] / base - 1) * 100:+.1f} % |"
        )
    curve = ", ".join(f"@{k} {v:.3f}" for k, v in where["hit_at_k"].items())
    lines += [
        "",
        f"Scored events: {where['repeat_share']:.1%} re-buy a product (never a hit), "
        f"{where['no_cooccurrence_with_last5_share']:.1%} go to a page that never co-occurred "
        "with the user's last 5 pages (no transition model reaches them); the baseline's "
        f"hit rate at k: {curve}. {where['code_within_5_of_previous_share']:.1%} go to a "
        "product whose code is within 5 of the previous line's (catalog structure of this "
        "log, not used by any model).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-events", type=int, default=None)
    args = parser.parse_args(argv)
    events = real_log("retail", max_events=args.max_events).events
    result: dict[str, Any] = {
        "args": f" --max-events {args.max_events}" if args.max_events else "",
        "n_events": len(events),
        "date": time.strftime("%Y-%m-%d"),
        "where": where_the_hits_are(events),  # type: ignore[arg-type]
        "variants": {},
    }
    for label, params in VARIANTS.items():
        result["variants"][label] = evaluate(TransitionStudy(**params), events)  # type: ignore[arg-type]
        print(label, result["variants"][label], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transition_study.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "transition_study.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
