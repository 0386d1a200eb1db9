"""``streamrec retrain`` on local[2] beside ``streamrec replay``: wall time and events/s.

    python -m bench.retrain [--sizes 200000,1000000] [--runs 3] [--replay-size 200000]

Events come from ``online_model.data.generate`` (users = events / 50, 2,000 pages), are
produced to a fresh topic of the embedded broker (or the one ``KAFKA_BOOTSTRAP_SERVERS``
names), then each command runs as a subprocess, as an operator runs it: the wall time
includes the interpreter and Spark start-up and the idle timeout that ends the read
(1 s here, reported apart). Medians over ``--runs``. Writes ``bench/results/retrain.json``
and ``bench/results/retrain.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import Bench, bench_services, child_env, encode_rows, machine, produce_all
from bench.training import replay_once
from online_model.data.generate import generate
from streams.io.topics import ensure_topics
from streams.settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
IDLE_S = 1.0


def _topic_with(bench: Bench, n: int) -> Settings:
    s = bench.run_settings(f"retrain{n}")
    ensure_topics(s, [s.topic_page_views])
    rows = generate(n_users=max(50, n // 50), n_pages=2_000, n_events=n, seed=42).rows()
    started = time.monotonic()
    produce_all(s, s.topic_page_views, encode_rows(rows, f"r{n}"))
    log.info("produced n=%d seconds=%.1f", n, time.monotonic() - started)
    return s


def retrain_once(s: Settings, master: str, timeout: float) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "streams.cli", "retrain",
        "--master", master,
        "--publish", "candidate",
        "--idle-timeout", str(IDLE_S),
        "--topic", s.topic_page_views,
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        argv, env=child_env(s), capture_output=True, timeout=timeout, cwd=ROOT, check=False
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"retrain failed: {done.stderr.decode(errors='replace')[-3000:]}")
    out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return {
        "wall_s": wall,
        "events": out["events"],
        "job_seconds": out["seconds"],
        "hit@10_tail": out["metrics"]["hit@10"],
        "version": out["version"],
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,1000000")
    parser.add_argument("--replay-size", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sizes = [int(x) for x in args.sizes.split(",") if x]
    result: dict[str, Any] = {
        "meta": {
            "machine": machine(),
            "master": args.master,
            "runs": args.runs,
            "idle_timeout_s": IDLE_S,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": "python -m bench.retrain " + " ".join(argv or sys.argv[1:]),
        },
        "retrain": {},
        "replay": {},
    }
    with tempfile.TemporaryDirectory() as tmp, bench_services(Path(tmp)) as (base, origin):
        result["meta"]["services"] = origin
        bench = Bench(base, origin, False, Path(tmp), Path(tmp))
        topics: dict[int, Settings] = {}
        for n in sorted({*sizes, args.replay_size}):
            topics[n] = _topic_with(bench, n)
        for n in sizes:
            runs = [retrain_once(topics[n], args.master, 900) for _ in range(args.runs)]
            assert all(r["events"] == n for r in runs), runs
            wall = _median([r["wall_s"] for r in runs])
            result["retrain"][str(n)] = {
                "events": n,
                "wall_s_median": wall,
                "events_per_s_wall": round(n / wall),
                "runs": runs,
            }
            log.info("retrain n=%d wall_median=%.1f", n, wall)
        n = args.replay_size
        replays = [replay_once(bench, topics[n], 900) for _ in range(args.runs)]
        walls = [r["wall_s"] for r in replays if r.get("seconds") is not None]
        if walls:
            wall = _median(walls)
            result["replay"][str(n)] = {
                "events": n,
                "wall_s_median": wall,
                "events_per_s_wall": round(n / wall),
                "runs": replays,
            }
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not sizes and (RESULTS / "retrain.json").exists():  # a replay-only run adds its rows
        kept = json.loads((RESULTS / "retrain.json").read_text())
        kept["replay"], kept["meta"]["replay_command"] = result["replay"], result["meta"]["command"]
        result = kept
    (RESULTS / "retrain.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (RESULTS / "retrain.md").write_text(report(result))
    print(report(result))
    return 0


def report(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        "# Retrain on Spark vs replay",
        "",
        f"`{meta['command']}` on {meta['machine']['cores']} cores "
        f"({meta['machine']['cpu']}), load at start {meta['machine']['load_avg_at_start']}, "
        f"{meta['services']} broker; master `{meta['master']}`; medians of {meta['runs']} runs. "
        f"Wall time of the whole command (interpreter, Spark start-up, reading, "
        f"aggregating, the 5,000-event online tail, publishing), including the "
        f"{meta['idle_timeout_s']:g} s idle timeout that ends the read.",
        "",
        "| command | events | wall s (median) | events/s | phases of the median run (s) |",
        "|---|---:|---:|---:|---|",
    ]
    for n, row in result["retrain"].items():
        runs = sorted(row["runs"], key=lambda r: r["wall_s"])
        phases = runs[len(runs) // 2]["job_seconds"]
        text = ", ".join(f"{k} {v:g}" for k, v in phases.items())
        lines.append(
            f"| retrain | {int(n):,} | {row['wall_s_median']:g} | "
            f"{row['events_per_s_wall']:,} | {text} |"
        )
    for n, row in result["replay"].items():
        lines.append(
            f"| replay | {int(n):,} | {row['wall_s_median']:g} | {row['events_per_s_wall']:,} | |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
