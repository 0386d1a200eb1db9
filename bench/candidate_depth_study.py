"""Is the candidate pool too shallow for heavy users? Depth of the pool on the real log.

Run ``python -m bench.candidate_depth_study [--max-events N] [--variants a,b] [--worlds]``;
writes ``bench/results/candidate_depth_study.{json,md}``. Same protocol and the same
pure-Python copy of the default as :mod:`bench.transition_study` (k=10, history = last 50
pages, every earlier page of the user excluded; users with no history not scored).

* **by history size**: scored events split by the number of distinct pages the user saw
  before (< 20, 20-99, 100-499, >= 500): share of events, share that re-buy (never a hit),
  hit@10 and MRR@10 of the copy, how many of the 10 served pages are transition
  candidates vs popularity fill, the candidates left after exclusion, and whether the
  target is reachable: in the served candidate rows (top ``n_candidates`` successors of
  the last 5 distinct pages), in the full successor rows of the last 5 / last 20 distinct
  pages, or among the successors of the last 5 pages' candidates (second order);
* **variants** that deepen the pool, one change at a time (:data:`VARIANTS`): deeper rows,
  more recent pages only when the pool after exclusion is short, second-order candidates
  (successors of the candidates, excluded ones included) only when short or always, the
  popularity term restricted to pages that co-occur with the user's last 50 pages, and
  those pages' successors as a weak extra score;
* ``--worlds``: the variants on the synthetic worlds of :mod:`bench.worlds` at 30 % scale
  (the ``--quick`` scale of :mod:`bench.robustness`), through the same copy.

A study, not a model: nothing here is served.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from online_model.models.covisit import Covisitation
from online_model.models.covisit.scoring import transition_sums

from .candidate_depth_report import BUCKETS, markdown
from .real_logs import real_log
from .transition_study import Tally, TransitionStudy, prequential
from .worlds import WORLDS, make_world

RESULTS = Path(__file__).parent / "results"
Event = tuple[Hashable, Hashable, int]


def bucket_of(n_distinct: int) -> str:
    return next(label for label, lo, hi in BUCKETS if lo <= n_distinct < hi)


class DepthStudy(TransitionStudy):
    """The copy of the default with switches that deepen its candidate pool.

    ``n_recent_short``: when fewer than ``k`` transition candidates survive exclusion,
    use up to this many distinct recent pages instead of ``n_recent``.
    ``second_order``: weight of second-order candidates, ``w x score(c) x P(q | c)`` summed
    over the ``n_seeds`` best first-order candidates ``c`` (excluded ones included);
    applied always, or only when the pool is short (``second_order_when_short``).
    ``restrict_pop``: the popularity term and fill only for pages among the successors of
    the user's last 50 pages (global popularity only if the list is still short).
    ``profile``: add ``w x`` the mean successor probability over the user's last 50
    distinct pages.
    """

    def __init__(
        self,
        *,
        n_recent_short: int = 0,
        second_order: float = 0.0,
        second_order_when_short: bool = False,
        n_seeds: int = 10,
        restrict_pop: bool = False,
        profile: float = 0.0,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.n_recent_short, self.n_seeds = n_recent_short, n_seeds
        self.second_order, self.second_order_when_short = second_order, second_order_when_short
        self.restrict_pop, self.profile = restrict_pop, profile

    def serve(
        self, history: Sequence[Hashable], k: int, exclude: set[Hashable]
    ) -> tuple[list[Hashable], set[Hashable]]:
        """The top ``k`` and the set of transition candidates (for the trace)."""
        distinct = list(dict.fromkeys(reversed(history)))
        recent = distinct[: self.n_recent]
        trans = self._transitions(recent)
        short = sum(q not in exclude for q in trans) < k
        if short and self.n_recent_short > len(recent):
            recent = distinct[: self.n_recent_short]
            trans = self._transitions(recent)
        if self.second_order and (short or not self.second_order_when_short):
            seeds = sorted(trans.items(), key=lambda kv: kv[1], reverse=True)[: self.n_seeds]
            extra: dict[Hashable, float] = defaultdict(float)
            for c, s in seeds:
                for q, p in self.row(c):
                    extra[q] += self.second_order * s * p
            for q, v in extra.items():
                trans[q] = trans.get(q, 0.0) + v
        allowed: set[Hashable] | None = None
        if self.restrict_pop or self.profile:
            prof: dict[Hashable, float] = defaultdict(float)
            for page in distinct:
                for q, p in self.row(page):
                    prof[q] += p
            allowed = set(prof)
            if self.profile:
                for q, v in prof.items():
                    trans[q] = trans.get(q, 0.0) + self.profile * v / len(distinct)
        scores = {q: v * (1 - self.mix) for q, v in trans.items()}
        norm = sum(self.trending.values()) or 1.0
        trending = self._trending()
        for q, t in trending:
            if not self.restrict_pop or (allowed is not None and q in allowed):
                scores[q] = scores.get(q, 0.0) + self.mix * t / norm
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        out = [q for q, _ in ranked if q not in exclude][:k]
        for q, _ in trending:
            if len(out) == k:
                break
            if q not in exclude and q not in out:
                out.append(q)
        return out, set(trans)

    def _transitions(self, recent: list[Hashable]) -> dict[Hashable, float]:
        """Recency-weighted mean of the recent pages' successor probabilities."""
        scores, total = self._weighted(recent)
        return {q: v / total for q, v in scores.items()} if total else {}


def evaluate(model: DepthStudy, events: Sequence[Event], k: int = 10, trace: bool = False) -> dict:
    """Prequential hit@k / MRR@k, overall and per history-size bucket (+ trace figures)."""
    tr: Counter[str] = Counter()  # trace counters, keyed "bucket|name"
    served: dict[str, set[Hashable]] = {}  # the transition candidates of the last list

    def serve(_user: Hashable, recent: list[Hashable], exclude: set[Hashable]) -> list[Hashable]:
        recs, served["trans"] = model.serve(recent, k, exclude)
        return recs

    def note(
        b: str, recent: list[Hashable], page: Hashable, recs: list[Hashable], exclude: set[Hashable]
    ) -> None:
        _trace(model, tr, b, recent, page, recs, served["trans"], exclude)

    tally = prequential(events, k, serve, model.learn, note if trace else None, bucket_of)
    result, n = _scores(tally, k), tally.n
    if trace:
        for label, _, _ in BUCKETS:
            m = max(n[label], 1)
            result["buckets"][label].update(
                {name: round(tr[f"{label}|{name}"] / m, 4) for name in TRACED}
            )
    return result


def evaluate_real(params: dict[str, Any], events: Sequence[Event], k: int = 10) -> dict:
    """The real :class:`Covisitation` under ``streamrec evaluate``'s protocol, per bucket,
    with how many served pages are its transition candidates (the rest is popularity)."""
    model = Covisitation(**params)
    from_trans: Counter[str] = Counter()

    def serve(user: Hashable, recent: list[Hashable], exclude: set[Hashable]) -> list[Hashable]:
        return [q for q, _ in model.recommend(user, k=k, history=recent, exclude=exclude)]

    def note(
        b: str, recent: list[Hashable], _page: Hashable, recs: list[Hashable], _ex: set[Hashable]
    ) -> None:
        trans = transition_sums(model, recent)[0]
        from_trans[b] += sum(q in trans for q in recs)

    def learn(user: Hashable, page: Hashable, ts: int) -> None:
        model.learn_one(user, page, x={"ts": ts})

    tally = prequential(events, k, serve, learn, note, bucket_of)
    result, n = _scores(tally, k), tally.n
    for label, _, _ in BUCKETS:
        share = round(from_trans[label] / max(n[label], 1), 4)
        result["buckets"][label]["served_from_transitions"] = share
    return result


def _scores(tally: Tally, k: int) -> dict[str, Any]:
    """hit@k and MRR@k overall and per history-size bucket."""
    n, hits, rr = tally.n, tally.hits, tally.rr
    return {
        **tally.overall(k),
        "buckets": {
            label: {
                "share": round(n[label] / max(sum(n.values()), 1), 4),
                f"hit@{k}": round(hits[label] / max(n[label], 1), 4),
                f"mrr@{k}": round(rr[label] / max(n[label], 1), 4),
            }
            for label, _, _ in BUCKETS
        },
    }


#: label -> parameters of the real model (``streamrec evaluate --param``)
REAL_MODELS: dict[str, dict[str, Any]] = {
    "covisit (default)": {},
    "max_neighbours 150, n_candidates 150": {"max_neighbours": 150, "n_candidates": 150},
}


#: per-event trace figures (means over a bucket's scored events)
TRACED = (
    "repeat",
    "served_from_transitions",
    "served_from_fill",
    "candidates_after_exclusion",
    "in_served_rows",
    "in_full_rows_last5",
    "in_full_rows_last20",
    "in_second_order",
)


def _trace(
    model: DepthStudy,
    tr: Counter[str],
    b: str,
    history: Sequence[Hashable],
    page: Hashable,
    recs: list[Hashable],
    trans: set[Hashable],
    exclude: set[Hashable],
) -> None:
    from_trans = sum(q in trans for q in recs)
    tr[f"{b}|served_from_transitions"] += from_trans
    tr[f"{b}|served_from_fill"] += len(recs) - from_trans
    tr[f"{b}|candidates_after_exclusion"] += sum(q not in exclude for q in trans)
    if page in exclude:
        tr[f"{b}|repeat"] += 1
        return
    distinct = list(dict.fromkeys(reversed(history)))
    if page in trans:
        tr[f"{b}|in_served_rows"] += 1
    if any(page in model.rows.get(q, ()) for q in distinct[: model.n_recent]):
        tr[f"{b}|in_full_rows_last5"] += 1
    if any(page in model.rows.get(q, ()) for q in distinct[:20]):
        tr[f"{b}|in_full_rows_last20"] += 1
    if any(page in model.rows.get(c, ()) for c in trans):
        tr[f"{b}|in_second_order"] += 1


#: label -> the one change to the copy of the default
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "rows of 60 successors": {"n_candidates": 60},
    "rows of 150 successors": {"n_candidates": 150},
    "last 20 pages when < 10 left": {"n_recent_short": 20},
    "2nd order when < 10 left (w 0.5)": {"second_order": 0.5, "second_order_when_short": True},
    "2nd order always (w 0.2)": {"second_order": 0.2},
    "popularity only among last-50 successors": {"restrict_pop": True},
    "last-50 successors added (w 0.2)": {"profile": 0.2},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--variants", default=None, help="comma-separated labels (default all)")
    parser.add_argument("--worlds", default=None, help="comma-separated labels to run on worlds")
    parser.add_argument(
        "--real", action="store_true", help="also run the real Covisitation (REAL_MODELS)"
    )
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the .md from the saved .json"
    )
    args = parser.parse_args(argv)
    if args.render:
        _write(json.loads((RESULTS / "candidate_depth_study.json").read_text()))
        return
    events: list[Event] = real_log("retail", max_events=args.max_events).events  # type: ignore[assignment]
    out = RESULTS / "candidate_depth_study.json"
    result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    result.update(
        {
            "args": f" --max-events {args.max_events}" if args.max_events else "",
            "n_events": len(events),
            "date": time.strftime("%Y-%m-%d"),
        }
    )
    result.setdefault("variants", {})
    everything = VARIANTS  # label -> parameters
    labels = (
        [x for x in args.variants.split(",") if x]
        if args.variants is not None
        else list(everything)
    )
    for label in labels:
        r = evaluate(DepthStudy(**everything[label]), events, trace=label == "baseline")
        result["variants"][label] = r
        print(label, json.dumps(r), flush=True)
        _write(result)
    if args.real:
        result.setdefault("real_model", {})
        for label, params in REAL_MODELS.items():
            result["real_model"][label] = evaluate_real(params, events)
            print(label, json.dumps(result["real_model"][label]), flush=True)
            _write(result)
    if args.worlds:
        result.setdefault("worlds", {})
        for label in ["baseline", *args.worlds.split(",")]:
            per = result["worlds"].setdefault(label, {})
            for name in WORLDS:
                world = make_world(name, scale=0.3)
                per[name] = evaluate(DepthStudy(**everything[label]), world.events)  # type: ignore[arg-type]
                print(label, name, per[name]["hit@10"], flush=True)
            _write(result)
    result["variants"] = {
        label: result["variants"][label] for label in everything if label in result["variants"]
    }
    _write(result)
    print(markdown(result))


def _write(result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "candidate_depth_study.json").write_text(json.dumps(result, indent=2) + "\n")
    if "baseline" in result["variants"]:
        (RESULTS / "candidate_depth_study.md").write_text(markdown(result))


if __name__ == "__main__":
    main()
