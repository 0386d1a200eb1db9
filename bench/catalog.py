"""The catalog's costs: how soon a hidden page stops being served, and what filtering
costs the scorer.

``python -m bench.catalog [--quick]`` writes ``bench/results/catalog.{json,md}``:

1. hide → gone (:mod:`bench.catalog_hide`): p50/p99/max of the delay from the broker's
   ack of a hide record to the moment neither REST nor the recommendations topic serves
   the page, over ``--trials`` hides of everyone's top page, on the embedded broker and
   Redis (or ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL``).
2. filters on vs off (:mod:`bench.catalog_filters`): events/s of the scoring core
   (decode + score, the scorer's per-batch work apart from Redis and Kafka) with a
   ``--pages``-page catalog, variants interleaved in rounds, ratios within a round.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any

from . import catalog_filters, catalog_hide
from .harness import Bench, bench_services, machine
from .report import write_pair

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 trials, 20k pages, 3 rounds")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--probe-every", type=float, default=0.01, help="seconds")
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--train", type=int, default=300_000)
    parser.add_argument("--score", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("hide", "filters"))
    parser.add_argument("--output", type=Path, default=RESULTS / "catalog.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.quick:
        args.trials, args.pages, args.train, args.score, args.rounds = 10, 20_000, 60_000, 1_000, 3
    out: dict[str, Any] = {"machine": machine()}
    if args.only != "filters":
        with (
            tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp,
            bench_services(Path(tmp) / "services") as (base, origin),
        ):
            bench = Bench(base, origin, args.quick, Path(tmp), Path(tmp))
            settings = bench.run_settings("catalog", topic_pages=f"pages-{uuid.uuid4().hex[:6]}")
            out["hide"] = {
                "services": origin,
                **catalog_hide.measure(settings, Path(tmp), args.trials, args.probe_every),
            }
    if args.only != "hide":
        out["filters"] = catalog_filters.measure(args.pages, args.train, args.score, args.rounds)
    write_pair(args.output, out, report(out))
    print(report(out))


def report(out: dict[str, Any]) -> str:
    lines = ["# Catalog: hide → gone, and what filtering costs", ""]
    m = out["machine"]
    lines.append(
        f"Machine: {m['cores']} cores ({m['cpu']}), load average at start "
        f"{m['load_avg_at_start'][0]} — shared with other work, so only ratios measured "
        "side by side are claims."
    )
    if "hide" in out:
        h = out["hide"]
        lines += [
            "",
            f"## Hide acknowledged → no path serves the page ({h['trials']} trials, "
            f"probes every {h['probe_every_s'] * 1000:.0f} ms, {h['services']} services)",
            "",
            "| path | p50 | p99 | max |",
            "|---|---:|---:|---:|",
        ]
        for path, name in (
            ("rest_s", "REST"),
            ("topic_s", "recommendations topic"),
            ("both_s", "every path"),
        ):
            f = h[path]
            p50, p99, top = (f[q] * 1000 for q in ("p50", "p99", "max"))
            lines.append(f"| {name} | {p50:.0f} ms | {p99:.0f} ms | {top:.0f} ms |")
        lines += ["", "batch-score reads the catalog to its end when it starts: no delay."]
    if "filters" in out:
        f = out["filters"]
        lines += [
            "",
            f"## Scoring core events/s with a {f['n_pages']:,}-page catalog "
            f"({f['n_score']:,} events x {f['rounds']} interleaved rounds, default model "
            f"trained on {f['n_train']:,} events)",
            "",
            "| variant | events/s (median) | ratio to off | mean list length | what |",
            "|---|---:|---:|---:|---|",
        ]
        for name, v in f["variants"].items():
            lines.append(
                f"| {name} | {v['events_per_s']:,} | {v['ratio_to_off']:.2f} | "
                f"{v['mean_list_length']} | {v['what']} |"
            )
        listed = f["variants"].get("listed", {}).get("catalog_load_s")
        if listed is not None:
            lines += ["", f"Applying the {f['n_pages']:,} page records: {listed:.2f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
