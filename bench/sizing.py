"""Sizing: per-unit costs measured on the real processes, and what they mean at scale.

    python -m bench.sizing [--quick] [--retrain-runs N] [--output bench/results/sizing.json]
    python -m bench.sizing --rederive [--output bench/results/sizing.json]

Measures, on the embedded broker and Redis (or the ones ``KAFKA_BOOTSTRAP_SERVERS`` and
``REDIS_URL`` name), at several scales (``bench.sizing_measure``):

* trainer bytes per buffered user and per page link, and CPU seconds per event;
* scorer bytes per user and per link of the model it loads, and CPU seconds per event
  (backlog and paced at 1,000/s), with the Redis server's CPU for its round trips;
* full-snapshot bytes per user and per link; Redis bytes per user history;
* ``streamrec retrain`` seconds per million events on ``local[1]`` and ``local[2]``;
* ``streamrec trainer --shard i/N`` processes on one world, each one's RSS beside what
  the plain trainer's fit predicts: the merging shard's and the shards' CPU factors the
  table uses (``shard_check``).

Fits each cost linearly over the scales (``bench.sizing_table.fit_linear``) and turns
the costs into the table of ``bench.sizing_table.table`` for 1M / 10M / 100M users,
100k / 1M pages and 1k / 10k / 100k events/s. Writes ``bench/results/sizing.json`` and
``sizing.md`` (``bench.sizing_report``). Quick: about 3 minutes on 2 cores; full: ~10.
``--rederive`` recomputes the costs, table and report of ``--output`` from the
measurements it holds, without measuring.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .harness import Bench, run_standalone
from .report import RESULTS, write_pair
from .sizing_measure import history_points, model_point, shard_point
from .sizing_report import report
from .sizing_retrain import retrain_point, retrain_topic
from .sizing_table import Assumptions, Costs, Fit, fit_linear, table

log = logging.getLogger(__name__)

#: (users, pages, events) of each world the trainer and a scorer run on.
WORLDS = {
    True: [
        (10_000, 2_000, 100_000),
        (200_000, 2_000, 400_000),
        (10_000, 16_000, 200_000),
        (30_000, 8_000, 150_000),
    ],
    False: [
        (20_000, 2_000, 200_000),
        (400_000, 2_000, 1_000_000),
        (20_000, 20_000, 400_000),
        (60_000, 10_000, 400_000),
        (30_000, 50_000, 800_000),
        (1_000_000, 5_000, 2_000_000),
    ],
}
SCORE_PHASES = {True: [3_000, 3_000], False: [5_000, 5_000, 5_000]}
PACED_S = {True: 4.0, False: 10.0}
HISTORY_USERS = {True: [10_000, 20_000, 40_000], False: [25_000, 50_000, 100_000, 200_000]}
#: The world trainer shards learn (``--shard i/N`` on a 4-partition topic), and their N.
SHARDED = {True: (30_000, 8_000, 150_000), False: (60_000, 10_000, 400_000)}
SHARD_COUNTS = {True: [2], False: [2, 4]}
RETRAIN_SIZES = {True: [100_000, 500_000], False: [200_000, 1_000_000]}
MASTERS = ("local[1]", "local[2]")
#: Ids of the history measurement: the generator's short ones, and UUID-like ones.
ID_LENGTHS = (8, 36)
#: Links a page's row holds at most (2 x max_neighbours, the default 50): the table
#: prices every page at this, the most a page costs.
LINKS_PER_PAGE = 100
TABLE = {
    "users": [1_000_000, 10_000_000, 100_000_000],
    "pages": [100_000, 1_000_000],
    "rates": [1_000, 10_000, 100_000],
}


def measure(bench: Bench, quick: bool, retrain_runs: int) -> dict[str, Any]:
    """Every measurement, in the order the report lists them."""
    out: dict[str, Any] = {"quick": quick, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out["histories"] = [
        history_points(bench, HISTORY_USERS[quick], n, bench.base.history_length, bench.base.k)
        for n in ID_LENGTHS
    ]
    out["models"] = [
        model_point(bench, u, p, e, SCORE_PHASES[quick], PACED_S[quick])
        for u, p, e in WORLDS[quick]
    ]
    out["shards"] = [shard_point(bench, *SHARDED[quick], n, 4) for n in SHARD_COUNTS[quick]]
    out["retrain"] = []
    for n in RETRAIN_SIZES[quick]:
        s = retrain_topic(bench, n)
        for _ in range(retrain_runs):
            for master in MASTERS:  # in turns, so a change of load hits both alike
                out["retrain"].append(retrain_point(s, n, master))
    return out


def _per_event(phases: list[dict[str, Any]], kind: str, key: str) -> float:
    chosen = [p for p in phases if p["kind"] == kind]
    return sum(p[key] * p["events"] for p in chosen) / sum(p["events"] for p in chosen)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _larger_median(per_event: dict[str, list[Any]], *names: str) -> float:
    return max(float(statistics.median(per_event[n])) for n in names)


def shard_check(
    run: dict[str, Any], trainer: Fit, snap: Fit, plain_cpu_s: float | None
) -> dict[str, Any]:
    """Each shard's peak RSS beside the plain trainer's fit applied to the users and
    links of the partitions it learned. The shards but the one furthest above it share
    an overhead (their median excess); that one is taken as the merging shard, and its
    excess beyond the overhead over the arrays of every partition's state and of the
    merge is the merging factor (``merger_factor`` of ``bench.sizing_table``). The
    shards' CPU (start included) over ``plain_cpu_s``, a plain trainer's on the same
    world (start included), is ``shard_cpu_factor``."""
    parts = {int(p): shape for p, shape in run["parts"].items()}
    links = run["merged"]["links"] + sum(shape["links"] for shape in parts.values())
    arrays = snap.coef["links"] * links
    rows = []
    for proc in run["processes"]:
        users = sum(parts[p]["users"] for p in proc["partitions"] if p in parts)
        held = sum(parts[p]["links"] for p in proc["partitions"] if p in parts)
        plain = trainer.intercept + trainer.coef["users"] * users + trainer.coef["links"] * held
        rows.append(
            {
                "shard": proc["shard"],
                "users": users,
                "links": held,
                "peak_rss_bytes": proc["peak_rss_bytes"],
                "predicted_bytes": plain,
                "excess_bytes": proc["peak_rss_bytes"] - plain,
                "cpu_s": proc["cpu_s"],
            }
        )
    cpu = sum(r["cpu_s"] or 0.0 for r in rows)
    merging = max(rows, key=lambda r: r["excess_bytes"])
    others = [r["excess_bytes"] for r in rows if r is not merging]
    overhead = statistics.median(others) if others else 0.0
    return {
        "shards": run["shards"],
        "partitions": run["partitions"],
        "world": run["world"],
        "links_in_parts_over_merged": (links - run["merged"]["links"]) / run["merged"]["links"],
        "cpu_s_per_event": cpu / run["world"]["events"],
        "plain_cpu_s": plain_cpu_s,
        "shard_cpu_factor": cpu / plain_cpu_s if plain_cpu_s else None,
        "processes": rows,
        "merging_shard": merging["shard"],
        "overhead_bytes": overhead,
        "merging_arrays_bytes": arrays,
        "merger_factor": (merging["excess_bytes"] - overhead) / arrays,
    }


def plain_cpu(m: dict[str, Any], world: dict[str, int]) -> float | None:
    """A plain trainer's CPU seconds (start included) on ``world``, if one was measured."""
    same = [p["trainer"]["cpu_s_at_cover"] for p in m["models"] if p["world"] == world]
    return same[0] if same else None


def costs_of(m: dict[str, Any]) -> tuple[Costs, dict[str, Any]]:
    """The per-unit costs of a run's measurements, and the fits behind them."""
    trainers = [{**p["trainer"]} for p in m["models"]]
    scorers = [
        {**p["scorer"], "users": p["trainer"]["users"], "links": p["trainer"]["links"]}
        for p in m["models"]
    ]
    fits: dict[str, Fit] = {
        "trainer_peak_rss": fit_linear(trainers, "peak_rss_bytes", ["users", "links"]),
        "trainer_rss": fit_linear(trainers, "rss_bytes", ["users", "links"]),
        "scorer_peak_rss": fit_linear(scorers, "peak_rss_bytes", ["users", "links"]),
        "scorer_ready_rss": fit_linear(scorers, "ready_rss_bytes", ["users", "links"]),
        "snapshot": fit_linear(trainers, "snapshot_bytes", ["users", "links"]),
    }
    for h in m["histories"]:
        fits[f"redis_{h['id_length']}"] = fit_linear(h["points"], "used_memory", ["users"])
    per_event: dict[str, list[Any]] = {
        "scorer_backlog": [
            _per_event(p["scorer"]["phases"], "backlog", "cpu_s_per_event") for p in m["models"]
        ],
        "scorer_paced": [
            _per_event(p["scorer"]["phases"], "paced", "cpu_s_per_event") for p in m["models"]
        ],
        "redis_backlog": [
            _per_event(p["scorer"]["phases"], "backlog", "redis_cpu_s_per_event")
            for p in m["models"]
        ],
        "redis_paced": [
            _per_event(p["scorer"]["phases"], "paced", "redis_cpu_s_per_event") for p in m["models"]
        ],
        "trainer": [p["trainer"]["cpu_s_per_event"] for p in m["models"]],
    }
    retrain: dict[str, Any] = {}
    for master in MASTERS:
        runs = [r for r in m["retrain"] if r["master"] == master]
        cores = int(master.split("[")[1].rstrip("]"))
        fit = fit_linear(runs, "spark_s", ["events"])
        cpu = fit_linear(runs, "tree_cpu_s", ["events"])
        retrain[master] = {
            "fit": fit.as_dict(),
            "cpu_fit": cpu.as_dict(),
            "cpu_s_per_million": cpu.coef["events"] * 1e6,
            "cores": cores,
            "s_per_million": fit.coef["events"] * 1e6,
            "core_s_per_million": fit.coef["events"] * 1e6 * cores,
        }
    trainer_fit = fit_linear(trainers, "cpu_s_at_cover", ["events"])
    fits["trainer_cpu"] = trainer_fit
    median = {name: _median(v) for name, v in per_event.items()}
    t, sc, snap = fits["trainer_peak_rss"], fits["scorer_peak_rss"], fits["snapshot"]
    costs = Costs(
        trainer_base_bytes=t.intercept,
        trainer_bytes_per_user=t.coef["users"],
        trainer_bytes_per_page=t.coef["links"] * LINKS_PER_PAGE,
        scorer_base_bytes=sc.intercept,
        # A scorer holds at least the snapshot's arrays (RSS noise can fit less).
        scorer_bytes_per_user=max(sc.coef["users"], snap.coef["users"]),
        scorer_bytes_per_page=max(sc.coef["links"], snap.coef["links"]) * LINKS_PER_PAGE,
        snapshot_bytes_per_user=snap.coef["users"],
        snapshot_bytes_per_page=snap.coef["links"] * LINKS_PER_PAGE,
        redis_bytes_per_user=fits[f"redis_{max(ID_LENGTHS)}"].coef["users"],
        scorer_cpu_s_per_event=_larger_median(per_event, "scorer_paced", "scorer_backlog"),
        trainer_cpu_s_per_event=trainer_fit.coef["events"],
        redis_cpu_s_per_event=_larger_median(per_event, "redis_paced", "redis_backlog"),
        retrain_core_s_per_million=max(r["core_s_per_million"] for r in retrain.values()),
    )
    detail = {
        "shard_check": [shard_check(r, t, snap, plain_cpu(m, r["world"])) for r in m["shards"]],
        "fits": {k: f.as_dict() for k, f in fits.items()},
        "per_event": per_event,
        "per_event_median": median,
        "retrain": retrain,
        "links_per_page_priced": LINKS_PER_PAGE,
        "links_per_page_measured": [
            p["trainer"]["links"] / p["trainer"]["pages"] for p in m["models"]
        ],
    }
    return costs, detail


def derive(m: dict[str, Any], history_length: int, k: int) -> dict[str, Any]:
    """The costs, their fits and the table of measurements ``m`` (``measure``'s)."""
    costs, detail = costs_of(m)
    # The shards' factors as measured (the largest of each), else the defaults.
    assumptions = Assumptions()
    checks = detail["shard_check"]
    if checks:
        cpu = [c["shard_cpu_factor"] for c in checks if c["shard_cpu_factor"]]
        assumptions = dataclasses.replace(
            assumptions,
            merger_factor=max(c["merger_factor"] for c in checks),
            shard_cpu_factor=max(cpu, default=assumptions.shard_cpu_factor),
        )
    rows = table(costs, TABLE["users"], TABLE["pages"], TABLE["rates"], assumptions)
    return {
        "costs": costs.__dict__,
        "derivation": detail,
        "assumptions": {
            **assumptions.__dict__,
            "history_length": history_length,
            "k": k,
            "redis_id_length": max(ID_LENGTHS),
        },
        "table": [r.as_dict() for r in rows],
    }


def rederive(path: Path) -> None:
    """Recompute the costs, table and report of a results file from its measurements
    (after a change to the fits, the assumptions or the report), without measuring."""
    out = json.loads(path.read_text())
    out.update(derive(out, out["assumptions"]["history_length"], out["assumptions"]["k"]))
    out["rederived_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_pair(path, out, report(out))
    print(report(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller scales (~3 min)")
    parser.add_argument("--retrain-runs", type=int, default=None, help="[quick 1, full 2]")
    parser.add_argument("--output", type=Path, default=RESULTS / "sizing.json")
    parser.add_argument(
        "--rederive", action="store_true", help="recompute --output from its measurements"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.rederive:
        rederive(args.output)
        return 0
    retrain_runs = args.retrain_runs or (1 if args.quick else 2)
    command = "python -m bench.sizing" + (" --quick" if args.quick else "")
    if args.retrain_runs:
        command += f" --retrain-runs {args.retrain_runs}"

    def go(bench: Bench) -> dict[str, Any]:
        started = time.monotonic()
        m = measure(bench, args.quick, retrain_runs)
        out = {"command": command, **m, "seconds": round(time.monotonic() - started)}
        return {**out, **derive(m, bench.base.history_length, bench.base.k)}

    run_standalone(args.output, go, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
