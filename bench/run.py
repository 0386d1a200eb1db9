"""Run the pipeline benches and write the results (``python -m bench``)."""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import render
from .harness import Bench, bench_services, machine
from .report import RESULTS, write_json
from .world import make_world, train

log = logging.getLogger(__name__)

# (quick, full)
SIZES = {
    "n_users": (100_000, 100_000),
    "n_pages": (10_000, 10_000),
    "n_train": (200_000, 1_000_000),  # also the replay / trainer catch-up topic
    "n_score": (6_000, 40_000),
    "latency_s": (10.0, 30.0),
    "freshness_s": (10.0, 30.0),
}


def _size(name: str, quick: bool) -> Any:
    return SIZES[name][0 if quick else 1]


def run_benches(
    sections: Sequence[str],
    quick: bool,
    runs: int | None = None,
    results_dir: Path | None = None,
    snapshot_interval: float = 0.5,
) -> str:
    """Run ``sections``; write JSON per section, REPORT.md and the plot; return the report."""
    results = results_dir or RESULTS
    started = time.monotonic()
    meta = {
        "machine": machine(),
        "quick": quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    n_runs = runs or 3
    with (
        tempfile.TemporaryDirectory(prefix="streamrec-bench-") as tmp,
        bench_services(Path(tmp) / "services") as (base, origin),
    ):
        meta["services"] = origin
        bench = Bench(base, origin, quick, Path(tmp), results / "logs")
        world = make_world(
            _size("n_users", quick),
            _size("n_pages", quick),
            _size("n_train", quick),
            _size("n_score", quick),
        )
        train(world)
        meta["world"] = world.describe()
        sections_out: dict[str, dict[str, Any]] = {}
        if "throughput" in sections:
            from .throughput import bench_scorer_throughput

            sections_out["scorer_throughput"] = bench_scorer_throughput(
                bench, world, runs or (3 if quick else 5)
            )
        if "latency" in sections:
            from .latency import bench_latency

            sections_out["latency"] = bench_latency(
                bench, world, _size("latency_s", quick), runs or (2 if quick else 3)
            )
        if "freshness" in sections:
            from .latency import bench_freshness

            sections_out["freshness"] = bench_freshness(
                bench,
                world,
                _size("freshness_s", quick),
                runs or (2 if quick else 3),
                snapshot_interval=snapshot_interval,
            )
        if "engine" in sections:
            from .engine_load import bench_engine_load

            sections_out["engine_load"] = bench_engine_load(bench, world, runs or 2)
        if "trainer" in sections:
            from .training import bench_training

            sections_out.update(bench_training(bench, world, n_runs))
        meta["raw_learn_per_s_runs"] = [round(r) for r in world.learn_runs]
        meta["raw_learn_per_s"] = round(statistics.median(world.learn_runs))
    meta["seconds"] = round(time.monotonic() - started, 1)
    for name, payload in sections_out.items():
        write_json(name, {"meta": meta, **payload}, results)
    return render.write_report(results, meta)
