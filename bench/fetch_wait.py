"""What the stall-proof defaults cost in latency: the old fetch wait and linger vs the new.

Run ``python -m bench.fetch_wait [--rounds 3] [--rate 1000] [--seconds 20]``; writes
``bench/results/fetch_wait.{json,md}``. Each round runs, in turn, a fresh ``streamrec
scorer`` on fresh topics for each configuration and measures page view produced ->
recommendation consumed at ``rate``/s, as the latency bench does:

- *before*: the scorer's ``STREAMREC_FETCH_MAX_WAIT_MS=5``, page views produced with
  ``linger.ms=5`` (``streamrec produce``'s old default);
- *after*: the defaults (fetch wait 100 ms; the producer's ``linger.ms`` that
  ``streamrec produce`` now uses on this broker: 50 ms on the embedded one, 5 on others).

The bench's reader of ``recommendations`` is the same in both (fetch wait 5 ms). A fresh
topic is where the old settings are at their best: on the embedded broker they starve
once a partition holds tens of thousands of small batches (docs/guarantees.md, "The embedded
broker"; ``python -m bench.soak`` runs the new ones for an hour).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from .harness import Bench, run_standalone
from .latency import PacedScorer
from .report import RESULTS, percentile, summary
from .world import make_world, train

#: name -> (scorer fetch wait ms or None for the default, producer linger ms or None)
CONFIGS: dict[str, tuple[int | None, int | None]] = {
    "before": (5, 5),
    "after": (None, None),
    "linger 200 ms": (None, 200),
}


def one_run(
    bench: Bench, world: Any, name: str, rate: int, seconds: float, r: int
) -> dict[str, Any]:
    fetch_wait, linger = CONFIGS[name]
    overrides = {} if fetch_wait is None else {"fetch_max_wait_ms": fetch_wait}
    s = bench.run_settings(f"fw-{name}", **overrides)
    scorer = PacedScorer(bench, world, s, f"fetch-wait-{name}-{r}")
    linger_ms = s.producer_linger_ms if linger is None else linger
    scorer.producer = Producer(s.producer_config(**{"linger.ms": linger_ms}))
    try:
        run = scorer.wait().paced(world, rate, seconds, f"fw-{name}-{r}", drain_s=60.0)
    finally:
        scorer.close()
    lat = [(run.received[e] - t) * 1000 for e, t in run.sent.items() if e in run.received]
    return {
        "scorer_fetch_wait_ms": s.fetch_wait_ms,
        "producer_linger_ms": linger_ms,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "unanswered": len(run.sent) - len(lat),
    }


def run(bench: Bench, rounds: int, rate: int, seconds: float) -> dict[str, Any]:
    world = train(make_world(20_000, 2_000, 100_000, 5_000), raw_runs=1, raw_events=20_000)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    for r in range(rounds):
        for name in CONFIGS:  # alternating: both see the same machine load
            runs[name].append(one_run(bench, world, name, rate, seconds, r))
            print(f"round {r} {name}: {runs[name][-1]}")
    ratios = [a["p99_ms"] / b["p99_ms"] for a, b in zip(runs["after"], runs["before"], strict=True)]
    return {
        "rate": rate,
        "seconds": seconds,
        "runs": runs,
        "p50_ms": {n: summary([x["p50_ms"] for x in v]) for n, v in runs.items()},
        "p99_ms": {n: summary([x["p99_ms"] for x in v]) for n, v in runs.items()},
        "p99_after_over_before": summary(ratios),
    }


def report(out: dict[str, Any]) -> str:
    lines = [
        f"# Latency of the old and new fetch wait / linger ({out['services']} broker)",
        "",
        f"{out['rate']:,} page views/s for {out['seconds']} s per run, a fresh scorer and "
        "fresh topics per run, configurations alternated in each round; latency = "
        f"produce() -> recommendation consumed. Load average at start: "
        f"{out['machine']['load_avg_at_start']}.",
        "",
        "| configuration | scorer fetch wait | producer linger | p50 ms (median) | "
        "p99 ms (median) | unanswered |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in out["runs"].items():
        first = runs[0]
        lines.append(
            f"| {name} | {first['scorer_fetch_wait_ms']} ms | {first['producer_linger_ms']} ms "
            f"| {out['p50_ms'][name]['median']:.0f} | {out['p99_ms'][name]['median']:.0f} "
            f"| {sum(x['unanswered'] for x in runs)} |"
        )
    ratio = out["p99_after_over_before"]
    lines += [
        "",
        f"p99 after / before, per round: median {ratio['median']:.2f}x "
        f"({ratio['min']:.2f}-{ratio['max']:.2f}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--output", type=Path, default=RESULTS / "fetch_wait.json")
    args = parser.parse_args(argv)
    run_standalone(
        args.output, lambda bench: run(bench, args.rounds, args.rate, args.seconds), report
    )


if __name__ == "__main__":
    main()
