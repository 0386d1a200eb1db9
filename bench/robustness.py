"""Cross-world robustness of candidate models under the exact prequential protocol.

Run ``python -m bench.robustness [--quick] [--jobs 2]``. Every candidate (a registry name
plus parameters; ``default`` is whatever the registry serves with no parameters) is
evaluated by :func:`online_model.evaluation.evaluate` (k=10, history = last 50 pages, every
earlier page of the user excluded) on every world of :mod:`bench.worlds` and every real log
of :mod:`bench.real_logs` (``retail``), beside the reference recommenders of
:mod:`bench.references` (labels ``ref:popularity``, ``ref:covisit_w3``, ``ref:sr``,
``ref:vsknn``; always run). Writes ``bench/results/robustness.json`` and
``bench/results/robustness.md``: hit@10, MRR@10 and events/s per world x model, and per
model the geometric mean of hit@10 and of its ratio to decayed popularity over the worlds,
the worst such ratio, and its ratio to the best reference on each world (geo-mean, worst
world).

``--quick`` builds the synthetic worlds at 30 % scale and keeps the first 30 % of each
real log's events; ``--max-events N`` keeps at most the first N events of every world
(real logs included), for a fast look. Reported figures use neither.

``--retrain-every N`` refits the batch layer of candidates that have one (``hybrid``)
every N events on the events before the refit (see :mod:`online_model.evaluation`);
without it they refit at their own default cadence. ``--candidates`` picks labels and
``--output`` names the result files (``bench/results/<output>.{json,md}``), e.g.
``python -m bench.robustness --candidates default,popularity,hybrid --output hybrid``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from online_model.evaluation import Retrainable, evaluate
from online_model.registry import DEFAULT_MODEL, make_model

from .real_logs import REAL_LOGS, real_log
from .references import REFERENCES
from .worlds import WORLDS, World, make_world

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).parent / "results"

#: (label, registry name, params). ``default`` must stay first: the table leads with it.
Candidate = tuple[str, str, dict[str, Any]]
CANDIDATES: list[Candidate] = [
    ("default", "default", {}),
    ("popularity", "popularity", {}),
    # Ablations of the default: the pre-study defaults (slow popularity with a fixed 1 %
    # weight), and the fast popularity with a fixed weight (no online mixture).
    ("covisit-before", "covisit", {"backoff": 0.01, "backoff_rate": 0, "pop_half_life": 200_000}),
    ("covisit-fixedmix", "covisit", {"backoff": 0.1, "backoff_rate": 0}),
    ("blend", "blend", {}),
    ("mf", "mf", {}),
    # The batch + online hybrid (EASE item-item refit periodically, mixed with covisit).
    ("hybrid", "hybrid", {}),
    ("ensemble", "ensemble", {}),
]
#: The reference recommenders, under the same protocol (always run: the yardsticks).
REFERENCE_CANDIDATES: list[Candidate] = [
    (f"ref:{name}", f"{REFERENCES[name].__module__}:{REFERENCES[name].__name__}", {})
    for name in REFERENCES
]
#: Synthetic worlds first, then the real logs.
ALL_WORLDS = [*WORLDS, *REAL_LOGS]

_WORLD_CACHE: dict[tuple[str, float, int | None], World] = {}


def build_world(name: str, scale: float = 1.0, max_events: int | None = None) -> World:
    """World ``name``: synthetic (:mod:`bench.worlds`) or real (:mod:`bench.real_logs`)."""
    if name in REAL_LOGS:
        return real_log(name, scale, max_events)
    world = make_world(name, scale)
    if max_events is not None:
        world.events = world.events[:max_events]
    return world


def _world(name: str, scale: float, max_events: int | None = None) -> World:
    key = (name, scale, max_events)
    if key not in _WORLD_CACHE:
        _WORLD_CACHE.clear()  # one world at a time per process: bounded memory
        _WORLD_CACHE[key] = build_world(name, scale, max_events)
    return _WORLD_CACHE[key]


def run_one(
    world: str,
    scale: float,
    candidate: Candidate,
    retrain_every: int | None = None,
    max_events: int | None = None,
) -> dict[str, Any]:
    """Prequential report of one candidate on one world."""
    label, name, params = candidate
    model = make_model(name, params)
    started = time.perf_counter()
    report = evaluate(
        model,
        _world(world, scale, max_events).events,
        k=10,
        model_name=label,
        params=params,
        retrain_every=retrain_every if isinstance(model, Retrainable) else None,
    )
    if hasattr(model, "_mixture"):
        report["popularity_share"] = round(model._mixture, 4)  # learned mixture weight
    if isinstance(model, Retrainable):
        online = getattr(model, "online", None)
        report["batch_share"] = round(getattr(model, "weight", 0.0), 4)  # learned mix weight
        if hasattr(model, "weights"):  # one per history length, shortest first
            report["batch_weights"] = [round(w, 4) for w in model.weights]
        if online is not None and hasattr(online, "_mixture"):
            report["popularity_share"] = round(online._mixture, 4)
    report.update(
        world=world, label=label, registry_name=name, wall_s=round(time.perf_counter() - started, 2)
    )
    logger.info(
        "world=%s model=%s hit@10=%.4f mrr@10=%.4f events_per_s=%.0f",
        world,
        label,
        report["hit@10"],
        report["mrr@10"],
        report["events_per_s"],
    )
    return report


def run(
    candidates: Sequence[Candidate],
    worlds: Sequence[str],
    scale: float,
    jobs: int = 1,
    retrain_every: int | None = None,
    max_events: int | None = None,
) -> list[dict[str, Any]]:
    """Every candidate on every world (world-major, so each process builds few worlds;
    the real logs, the longest, first so that no long run is left for the end)."""
    first = sorted(worlds, key=lambda w: w not in REAL_LOGS)
    tasks = [(w, scale, c, retrain_every, max_events) for w in first for c in candidates]
    if jobs <= 1:
        reports = [run_one(*t) for t in tasks]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            reports = list(pool.map(run_one, *zip(*tasks, strict=True)))
    return sorted(reports, key=lambda r: list(worlds).index(r["world"]))  # stable


def best_references(reports: list[dict[str, Any]]) -> dict[str, str]:
    """World -> label of the reference with the highest hit@10 there (none: no entry)."""
    best: dict[str, dict[str, Any]] = {}
    for r in reports:
        if r["label"].startswith("ref:") and r["hit@10"] > best.get(r["world"], {}).get(
            "hit@10", -1.0
        ):
            best[r["world"]] = r
    return {w: r["label"] for w, r in best.items()}


def summarise(reports: list[dict[str, Any]], baseline: str = "popularity") -> dict[str, Any]:
    """Per label: geometric means of hit@10 / MRR@10 and of the ratios to ``baseline``,
    the ratios of hit@10 and MRR@10 to ``default`` (geo-mean and worst world), and the
    ratio of hit@10 to the best reference on each world (per world, geo-mean, worst)."""
    by = {(r["label"], r["world"]): r for r in reports}
    labels = list(dict.fromkeys(r["label"] for r in reports))
    worlds = list(dict.fromkeys(r["world"] for r in reports))
    best_ref = best_references(reports)
    out = {}
    for label in labels:
        hits = [by[label, w]["hit@10"] for w in worlds]
        mrrs = [by[label, w]["mrr@10"] for w in worlds]
        ratios = [by[label, w]["hit@10"] / max(by[baseline, w]["hit@10"], 1e-9) for w in worlds]
        out[label] = {
            "gmean_hit@10": _gmean(hits),
            "gmean_mrr@10": _gmean(mrrs),
            "gmean_ratio_vs_popularity": _gmean(ratios),
            "min_ratio_vs_popularity": min(ratios),
        }
        if "default" in labels:
            vs_default = {
                w: by[label, w]["hit@10"] / max(by["default", w]["hit@10"], 1e-9) for w in worlds
            }
            mrr_vs_default = [
                by[label, w]["mrr@10"] / max(by["default", w]["mrr@10"], 1e-9) for w in worlds
            ]
            worst = min(vs_default, key=vs_default.__getitem__)
            out[label].update(
                {
                    "gmean_ratio_vs_default": _gmean(list(vs_default.values())),
                    "min_ratio_vs_default": vs_default[worst],
                    "worst_world_vs_default": worst,
                    "gmean_mrr_ratio_vs_default": _gmean(mrr_vs_default),
                    "min_mrr_ratio_vs_default": min(mrr_vs_default),
                }
            )
        if len(best_ref) == len(worlds):
            vs_ref = {
                w: by[label, w]["hit@10"] / max(by[best_ref[w], w]["hit@10"], 1e-9) for w in worlds
            }
            worst = min(vs_ref, key=vs_ref.__getitem__)
            out[label].update(
                {
                    "ratio_vs_best_reference": vs_ref,
                    "gmean_ratio_vs_best_reference": _gmean(list(vs_ref.values())),
                    "min_ratio_vs_best_reference": vs_ref[worst],
                    "worst_world_vs_best_reference": worst,
                }
            )
    return out


def _gmean(values: list[float]) -> float:
    return math.exp(sum(math.log(max(v, 1e-9)) for v in values) / len(values))


def markdown(reports: list[dict[str, Any]], summary: dict[str, Any], meta: dict[str, Any]) -> str:
    by = {(r["label"], r["world"]): r for r in reports}
    labels = list(summary)
    worlds = list(dict.fromkeys(r["world"] for r in reports))
    lines = [
        "# Cross-world robustness",
        "",
        f"Prequential protocol (`online_model/evaluation.py`, k=10, history = last 50, all of "
        f"the user's earlier pages excluded) on the synthetic stand-ins of `bench/worlds.py` "
        f"(scale {meta['scale']}) and the real logs of `bench/real_logs.py` "
        f"({_real_extent(meta)}). `default` = `{meta['default_model']}` with no parameters; "
        f"`ref:*` are the reference recommenders of `bench/references.py`. "
        f"Batch layers refit every {meta.get('retrain_every') or 'default number of'} events "
        f"on the events before each refit. "
        f"Cells: hit@10 / MRR@10 / events/s of the whole evaluate loop (2 shared cores: "
        f"throughput is indicative).",
        "",
        "| world | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for w in worlds:
        cells = [
            f"{by[lb, w]['hit@10']:.3f} / {by[lb, w]['mrr@10']:.3f} / "
            f"{by[lb, w]['events_per_s'] / 1000:.1f}k"
            for lb in labels
        ]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    for key, title in [
        ("gmean_hit@10", "geo-mean hit@10"),
        ("gmean_mrr@10", "geo-mean MRR@10"),
        ("gmean_ratio_vs_popularity", "geo-mean hit ratio vs popularity"),
        ("min_ratio_vs_popularity", "worst hit ratio vs popularity"),
        ("gmean_ratio_vs_default", "geo-mean hit ratio vs default"),
        ("min_ratio_vs_default", "worst hit ratio vs default"),
        ("gmean_mrr_ratio_vs_default", "geo-mean MRR ratio vs default"),
        ("min_mrr_ratio_vs_default", "worst MRR ratio vs default"),
    ]:
        if key not in summary[labels[0]]:
            continue
        lines.append(
            f"| **{title}** | " + " | ".join(f"{summary[lb][key]:.3f}" for lb in labels) + " |"
        )
    lines += _reference_table(labels, worlds, summary, by, meta.get("best_reference", {}))
    lines += [
        "",
        "World shapes:",
        "",
        "| world | mimics | " + " | ".join(meta["world_stats"][worlds[0]]) + " |",
        "|---|---|" + "---:|" * len(meta["world_stats"][worlds[0]]),
    ]
    for w in worlds:
        st = meta["world_stats"][w]
        lines.append(
            f"| {w} | {meta['mimics'][w]} | "
            + " | ".join(f"{v:,}" if isinstance(v, int) else f"{v}" for v in st.values())
            + " |"
        )
    lines += ["", "Parameters:", ""]
    for lb in labels:
        r = by[lb, worlds[0]]
        lines.append(f"- `{lb}`: `{r['registry_name']}` {json.dumps(r['params'])}")
    return "\n".join(lines) + "\n"


def _real_extent(meta: dict[str, Any]) -> str:
    if meta.get("max_events"):
        return f"first {meta['max_events']:,} events of each world"
    return "whole" if meta["scale"] >= 1 else f"first {meta['scale']:.0%} of their events"


def _reference_table(
    labels: list[str],
    worlds: list[str],
    summary: dict[str, Any],
    by: dict[tuple[str, str], dict[str, Any]],
    best_ref: dict[str, str],
) -> list[str]:
    """Rows of hit@10 ratios to the best reference of each world, models as columns."""
    models = [lb for lb in labels if not lb.startswith("ref:")]
    if not models or "ratio_vs_best_reference" not in summary[models[0]]:
        return []
    lines = [
        "",
        "hit@10 of each model over the best reference's on the same world (> 1: the model "
        "beats every reference there):",
        "",
        "| world | best reference (hit@10) | " + " | ".join(models) + " |",
        "|---|---|" + "---:|" * len(models),
    ]
    for w in worlds:
        ref = best_ref[w]
        cells = [f"{summary[lb]['ratio_vs_best_reference'][w]:.3f}" for lb in models]
        lines.append(f"| {w} | {ref} ({by[ref, w]['hit@10']:.4f}) | " + " | ".join(cells) + " |")
    lines.append(
        "| **geo-mean** | | "
        + " | ".join(f"{summary[lb]['gmean_ratio_vs_best_reference']:.3f}" for lb in models)
        + " |"
    )
    lines.append(
        "| **worst (world)** | | "
        + " | ".join(
            f"{summary[lb]['min_ratio_vs_best_reference']:.3f} "
            f"({summary[lb]['worst_world_vs_best_reference']})"
            for lb in models
        )
        + " |"
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="synthetic worlds at 30%% scale, the first 30%% of each real log",
    )
    parser.add_argument(
        "--max-events",
        type=int,
        default=None,
        help="keep at most the first N events of every world (real logs included)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--worlds", default=",".join(ALL_WORLDS), help="comma-separated worlds and real logs"
    )
    parser.add_argument(
        "--retrain-every",
        type=int,
        default=None,
        help="refit batch layers every N events (default: each model's own cadence)",
    )
    parser.add_argument(
        "--candidates",
        default=",".join(label for label, _, _ in CANDIDATES),
        help="comma-separated candidate labels (popularity and the references are always "
        "run: the baselines)",
    )
    parser.add_argument("--output", default="robustness", help="result file stem")
    args = parser.parse_args(argv)
    wanted = set(args.candidates.split(",")) | {"popularity"}
    unknown = wanted - {label for label, _, _ in CANDIDATES}
    if unknown:
        parser.error(f"unknown candidates: {', '.join(sorted(unknown))}")
    worlds = [w for w in args.worlds.split(",") if w]
    unknown = set(worlds) - set(ALL_WORLDS)
    if unknown:
        parser.error(f"unknown worlds: {', '.join(sorted(unknown))}")
    candidates = [c for c in CANDIDATES if c[0] in wanted] + REFERENCE_CANDIDATES
    scale = 0.3 if args.quick else 1.0
    started = time.perf_counter()
    reports = run(candidates, worlds, scale, args.jobs, args.retrain_every, args.max_events)
    summary = summarise(reports)
    built = {w: build_world(w, scale, args.max_events) for w in worlds}
    meta = {
        "scale": scale,
        "max_events": args.max_events,
        "default_model": DEFAULT_MODEL,
        "retrain_every": args.retrain_every,
        "python": platform.python_version(),
        "wall_s": round(time.perf_counter() - started, 1),
        "best_reference": best_references(reports),
        "world_stats": {w: world.stats() for w, world in built.items()},
        "mimics": {w: world.mimics for w, world in built.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "results": reports}, indent=2) + "\n"
    )
    text = markdown(reports, summary, meta)
    (RESULTS / f"{args.output}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
