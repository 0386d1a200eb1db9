"""Trainer shards: events/s and CPU-seconds per event for 1, 2 and 4 shards, the merged
model's quality against one trainer's, per-shard per-user memory and freshness.

Run ``python -m bench.trainer_shards [--quick]``; writes
``bench/results/trainer_shards.{json,md}``. On the embedded broker and Redis (or those
of ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL``):

- **throughput**: the generator's events are produced once to a topic of 4 partitions;
  then, for one trainer (no shards) and for 1, 2 and 4 shards (``streamrec trainer
  --shard i/N``, real processes, each run on a fresh model namespace), the time from the
  moment the first process is learning, and the CPU-seconds (utime + stime, from /proc)
  of each process from the moment it is (its start-up is no learning), to the moment the
  merged model counts every event. On 2 shared cores more
  than two processes cannot run faster: CPU-seconds per event is the figure that says
  whether sharding costs work.
- **quality** (in process, :mod:`bench.shard_quality`): prequential hit@10 of the served
  merge against a served single model on the same events, and per-user state per shard.
- **paced** (1k events/s, fresh processes each): one plain trainer, 1 shard and 2
  shards; their CPU-seconds per second of traffic, and freshness: for each event, the
  seconds from its produce() to the first ``current`` (the merge, for shards) whose
  offsets pass it (polled every 10 ms; a scorer adds its swap, woken by the publish's
  pub/sub hint). The 2-shard run is the freshness figure.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from online_model.data.generate import generate
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore

from .harness import Bench, child_env, encode_rows, paced, produce_all, run_standalone
from .report import percentile
from .shard_quality import prequential

log = logging.getLogger(__name__)

PARTITIONS = 4
RESULTS = Path(__file__).parent / "results" / "trainer_shards.json"
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _store(s: Settings) -> SnapshotStore:
    key = s.snapshot_key.get().encode()
    return SnapshotStore(s.redis_client(), s.model_name, key)


def _learned(store: SnapshotStore) -> int:
    version = store.current_version()
    return 0 if version is None else store.read_meta(version).events_seen


def _start(bench: Bench, s: Settings, shards: int | None, tag: str) -> list[ChildProcess]:
    env = child_env(s, STREAMREC_LOG_LEVEL="info")
    if shards is None:
        return [ChildProcess.streamrec(["trainer"], env, bench.logs / f"{tag}.log")]
    return [
        ChildProcess.streamrec(
            ["trainer", "--shard", f"{i}/{shards}"], env, bench.logs / f"{tag}-{i}.log"
        )
        for i in range(shards)
    ]


def _wait_ready(procs: list[ChildProcess], timeout: float = 120.0) -> tuple[float, list[float]]:
    """Wait until every process is learning; returns when the first one was, and each
    one's CPU-seconds as it became ready (its start-up, imports and connections, is not
    learning: four processes pay it four times, and a short run would count it as such).
    Only this run's output counts: logs are appended to across bench runs."""
    deadline = time.monotonic() + timeout
    first: float | None = None
    cpu: dict[int, float] = {}
    while len(cpu) < len(procs):
        for i, p in enumerate(procs):
            if i not in cpu and "ready:" in p.own_output():
                cpu[i] = _cpu_s(p.pid)
                first = time.monotonic() if first is None else first
            p.check()
        if time.monotonic() > deadline:
            raise TimeoutError("trainers not ready")
        time.sleep(0.01)
    assert first is not None
    return first, [cpu[i] for i in range(len(procs))]


def _throughput(bench: Bench, base: Settings, n_events: int, shards: int | None) -> dict[str, Any]:
    tag = "single" if shards is None else f"shards-{shards}"
    s = bench.run_settings(tag, topic_page_views=base.topic_page_views, partitions=PARTITIONS)
    store = _store(s)
    procs = _start(bench, s, shards, tag)
    try:
        started, cpu0 = _wait_ready(procs)
        while _learned(store) < n_events:
            for p in procs:
                p.check()
            time.sleep(0.05)
        took = time.monotonic() - started
        each = [_cpu_s(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
        cpu = sum(each)
        rss = [p.peak_rss_mb() for p in procs]
    finally:
        for p in procs:
            p.stop()
    return {
        "processes": len(procs),
        "seconds": round(took, 2),
        "events_per_s": round(n_events / took),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_event": round(cpu / n_events * 1e6, 2),
        "cpu_s_per_process": [round(c, 2) for c in each],
        "peak_rss_mb": rss,
    }


def _paced(
    bench: Bench, world: list[Any], rate: float, seconds: float, shards: int | None
) -> dict[str, Any]:
    """A paced stream into fresh trainers (one plain trainer, or ``shards`` shards):
    freshness, and the trainers' CPU-seconds per second of that traffic (what a
    trainer pays once it keeps up, where per-interval publishing and merging weigh
    most)."""
    tag = f"paced-{'single' if shards is None else shards}"
    s = bench.run_settings(tag, partitions=PARTITIONS)
    ensure_topics(s, [s.topic_page_views])
    store = _store(s)
    procs = _start(bench, s, shards, tag)
    seen: list[tuple[float, dict[int, int]]] = []  # (first seen as current, its offsets)
    done = threading.Event()

    def watch() -> None:
        last = None
        while not done.is_set():
            version = store.current_version()
            if version is not None and version != last:
                last = version
                offsets = store.read_meta(version).offsets.get(s.topic_page_views, {})
                seen.append((time.time(), offsets))
            time.sleep(0.01)

    sent: list[tuple[float, int, int]] = []  # (produce time, partition, offset)
    try:
        _wait_ready(procs)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        producer = Producer(s.producer_config(**{"linger.ms": 5}))
        events = encode_rows(world[: int(rate * seconds)], tag)

        def delivered(at: float, err: Any, msg: Any) -> None:
            if err is None:
                sent.append((at, msg.partition(), msg.offset()))

        cpu0 = [_cpu_s(p.pid) for p in procs]
        t0 = time.monotonic()
        for i in paced(producer, len(events), rate):
            key, value = events[i]
            producer.produce(
                s.topic_page_views,
                value,
                key,
                on_delivery=functools.partial(delivered, time.time()),
            )
        producer.flush(30)
        time.sleep(3.0)
        cpu = sum(_cpu_s(p.pid) for p in procs) - sum(cpu0)
        took = time.monotonic() - t0
    finally:
        done.set()
        for p in procs:
            p.stop()
    fresh = []
    for at, partition, offset in sent:
        covered = next((t for t, offs in seen if offs.get(partition, 0) > offset), None)
        if covered is not None:
            fresh.append(covered - at)
    return {
        "shards": shards,
        "offered_rate": rate,
        "seconds": seconds,
        "events": len(sent),
        "covered": len(fresh),
        "p50_s": round(percentile(fresh, 50), 3),
        "p99_s": round(percentile(fresh, 99), 3),
        "max_s": round(max(fresh), 3) if fresh else None,
        "cpu_s_per_s": round(cpu / took, 3),
    }


def run(bench: Bench, n_events: int, quality_events: int, fresh_s: float) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    views = generate(n_users=20_000, n_pages=2_000, n_events=n_events, seed=11)
    rows = views.rows()
    base = bench.run_settings("events", partitions=PARTITIONS)
    ensure_topics(base, [base.topic_page_views])
    produce_all(base, base.topic_page_views, encode_rows(rows, "ev"))
    throughput = {
        "single_trainer": _throughput(bench, base, n_events, None),
        **{f"{n}_shards": _throughput(bench, base, n_events, n) for n in (1, 2, 4)},
    }
    one = throughput["1_shards"]["cpu_us_per_event"]
    for figures in throughput.values():
        figures["cpu_per_event_vs_1_shard"] = round(figures["cpu_us_per_event"] / one, 3)
    quality = prequential(
        [(u, p, t) for u, p, t, _ in rows[:quality_events]], PARTITIONS, 1_000, 10_000
    )
    paced_runs = {
        name: _paced(bench, rows, 1_000, fresh_s, shards)
        for name, shards in (("single_trainer", None), ("1_shards", 1), ("2_shards", 2))
    }
    plain = paced_runs["single_trainer"]["cpu_s_per_s"]
    for figures in paced_runs.values():
        figures["cpu_vs_single_trainer"] = round(figures["cpu_s_per_s"] / plain, 2)
    return {
        "events": n_events,
        "partitions": PARTITIONS,
        "cores": os.cpu_count(),
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "throughput": throughput,
        "quality": {"events": quality_events, **quality},
        "paced": paced_runs,
    }


def report(out: dict[str, Any]) -> str:
    t = out["throughput"]
    lines = [
        "# Trainer shards",
        "",
        f"{out['events']:,} generated events (20k users, 2k pages) on a topic of "
        f"{out['partitions']} partitions, {out['cores']} cores (1-minute load average "
        f"{out['load_average_1m']['before']} before, {out['load_average_1m']['after']} after"
        + (": other work shared the machine" if out["load_average_1m"]["before"] > 1 else "")
        + "), services: "
        f"{out['services']}. `python -m bench.trainer_shards`.",
        "",
        "| trainers | processes | events/s | CPU µs/event | vs 1 shard | CPU s per process "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name, f in t.items():
        lines.append(
            f"| {name.replace('_', ' ').replace('1 shards', '1 shard')} | {f['processes']} | "
            f"{f['events_per_s']:,} | "
            f"{f['cpu_us_per_event']} | {f['cpu_per_event_vs_1_shard']}x | "
            f"{', '.join(str(c) for c in f['cpu_s_per_process'])} | "
            f"{', '.join(str(r) for r in f['peak_rss_mb'])} |"
        )
    q, fresh = out["quality"], out["paced"]["2_shards"]
    pu = q["per_user_state"]
    lines += [
        "",
        f"Prequential hit@10 on the first {q['events']:,} events (served model refreshed "
        f"every 1,000 events): one trainer {q['single']['hit@10']:.4f}, merged "
        f"{q['merged']['hit@10']:.4f} ({q['relative_difference'] * 100:+.2f} % relative); "
        f"mixture weight: one trainer {q['mixture']['single']:.4f}, parts "
        f"{q['mixture']['parts']}.",
        "",
        "Per-user state (recent pages) held by the largest shard: "
        + ", ".join(
            f"{n} shard{'s' if n > 1 else ''} {pu[f'{n}_shards']['largest_shard_users']:,} users "
            f"{pu[f'{n}_shards']['largest_shard_mb']:.2f} MB"
            for n in (1, 2, 4)
        )
        + f" (one trainer: {pu['single_trainer']['users']:,} users "
        f"{pu['single_trainer']['mb']:.2f} MB).",
        "",
        f"Freshness with 2 shards at {fresh['offered_rate']:,.0f} events/s: p50 "
        f"{fresh['p50_s']} s, p99 {fresh['p99_s']} s "
        f"({fresh['covered']:,} of {fresh['events']:,} events covered; "
        "produce -> merged `current` covering it).",
        "",
        f"Paced at {fresh['offered_rate']:,.0f} events/s for {fresh['seconds']:g} s "
        "(trainers keeping up: per-interval publishing and merging weigh most):",
        "",
        "| trainers | CPU s per s | vs one trainer | freshness p50 | p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, f in out["paced"].items():
        lines.append(
            f"| {name.replace('_', ' ').replace('1 shards', '1 shard')} | "
            f"{f['cpu_s_per_s']} | {f['cpu_vs_single_trainer']}x | {f['p50_s']} s | "
            f"{f['p99_s']} s |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    events, quality, fresh = (40_000, 20_000, 8.0) if args.quick else (300_000, 150_000, 30.0)
    run_standalone(args.output, lambda bench: run(bench, events, quality, fresh), report)


if __name__ == "__main__":
    main()
