"""Cross-world robustness of candidate models under the exact prequential protocol.

Run ``python -m bench.robustness [--quick] [--jobs 2]``. Every candidate (a registry name
plus parameters; ``default`` is whatever the registry serves with no parameters) is
evaluated by :func:`online_model.evaluation.evaluate` (k=10, history = last 50 pages, every
earlier page of the user excluded) on every world of :mod:`bench.worlds`. Writes
``bench/results/robustness.json`` and ``bench/results/robustness.md``: hit@10, MRR@10 and
events/s per world x model, and per model the geometric mean of hit@10 and of its ratio
to decayed popularity over the worlds, and the worst such ratio.

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
]

_WORLD_CACHE: dict[tuple[str, float], World] = {}


def _world(name: str, scale: float) -> World:
    key = (name, scale)
    if key not in _WORLD_CACHE:
        _WORLD_CACHE.clear()  # one world at a time per process: bounded memory
        _WORLD_CACHE[key] = make_world(name, scale)
    return _WORLD_CACHE[key]


def run_one(
    world: str, scale: float, candidate: Candidate, retrain_every: int | None = None
) -> dict[str, Any]:
    """Prequential report of one candidate on one world."""
    label, name, params = candidate
    model = make_model(name, params)
    started = time.perf_counter()
    report = evaluate(
        model,
        _world(world, scale).events,
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
        if hasattr(online, "_mixture"):
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
) -> list[dict[str, Any]]:
    """Every candidate on every world (world-major, so each process builds few worlds)."""
    tasks = [(w, scale, c, retrain_every) for w in worlds for c in candidates]
    if jobs <= 1:
        return [run_one(*t) for t in tasks]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(run_one, *zip(*tasks, strict=True)))


def summarise(reports: list[dict[str, Any]], baseline: str = "popularity") -> dict[str, Any]:
    """Per label: geometric means of hit@10 / MRR@10 and of the ratios to ``baseline``,
    and the ratios of hit@10 and MRR@10 to ``default`` (geo-mean and worst world)."""
    by = {(r["label"], r["world"]): r for r in reports}
    labels = list(dict.fromkeys(r["label"] for r in reports))
    worlds = list(dict.fromkeys(r["world"] for r in reports))
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
        f"(scale {meta['scale']}). `default` = `{meta['default_model']}` with no parameters. "
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="worlds at 30%% scale")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--worlds", default=",".join(WORLDS), help="comma-separated worlds")
    parser.add_argument(
        "--retrain-every",
        type=int,
        default=None,
        help="refit batch layers every N events (default: each model's own cadence)",
    )
    parser.add_argument(
        "--candidates",
        default=",".join(label for label, _, _ in CANDIDATES),
        help="comma-separated candidate labels (popularity is always run: the baseline)",
    )
    parser.add_argument("--output", default="robustness", help="result file stem")
    args = parser.parse_args(argv)
    wanted = set(args.candidates.split(",")) | {"popularity"}
    unknown = wanted - {label for label, _, _ in CANDIDATES}
    if unknown:
        parser.error(f"unknown candidates: {', '.join(sorted(unknown))}")
    candidates = [c for c in CANDIDATES if c[0] in wanted]
    scale = 0.3 if args.quick else 1.0
    worlds = [w for w in args.worlds.split(",") if w]
    started = time.perf_counter()
    reports = run(candidates, worlds, scale, args.jobs, args.retrain_every)
    summary = summarise(reports)
    meta = {
        "scale": scale,
        "default_model": DEFAULT_MODEL,
        "retrain_every": args.retrain_every,
        "python": platform.python_version(),
        "wall_s": round(time.perf_counter() - started, 1),
        "world_stats": {w: make_world(w, scale).stats() for w in worlds},
        "mimics": {w: make_world(w, scale).mimics for w in worlds},
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
