"""``streamrec retrain`` on local[2] beside the online trainer and ``streamrec replay``.

    python -m bench.retrain [--sizes 200000,1000000] [--runs 3] [--other-runs 1]
                            [--before-tree /path/to/an/older/checkout]

Events come from ``online_model.data.generate`` (users = events / 50, 2,000 pages), are
produced to a fresh topic of the embedded broker (or the one ``KAFKA_BOOTSTRAP_SERVERS``
names). Then, for each size and in turns (so a change of load hits every command alike),
each command runs as a subprocess, as an operator runs it, on the same topic:

* ``streamrec retrain --publish candidate`` (``--runs`` times), and the same command from
  ``--before-tree`` if given (a checkout of an older version, ``--other-runs`` times);
* ``streamrec replay --publish candidate`` (``--other-runs`` times);
* ``streamrec trainer`` from an empty store until a snapshot covers the topic (its
  catch-up, ``--other-runs`` times; see ``bench.training``).

Wall times include the interpreter and Spark start-up and, for retrain and replay, the
idle timeout that ends the read (1 s here, stated). Medians. Writes
``bench/results/retrain.json`` and ``bench/results/retrain.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import Bench, bench_services, child_env, encode_rows, machine, produce_all
from bench.training import replay_once, trainer_catch_up
from online_model.data.generate import generate
from streams.io.topics import ensure_topics
from streams.settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
IDLE_S = 1.0


def _topic_with(bench: Bench, n: int) -> tuple[Settings, dict[int, int]]:
    """A fresh topic holding ``n`` generated views, and the next offset per partition."""
    s = bench.run_settings(f"retrain{n}")
    ensure_topics(s, [s.topic_page_views])
    rows = generate(n_users=max(50, n // 50), n_pages=2_000, n_events=n, seed=42).rows()
    started = time.monotonic()
    ends = produce_all(s, s.topic_page_views, encode_rows(rows, f"r{n}"))
    log.info("produced n=%d seconds=%.1f", n, time.monotonic() - started)
    return s, ends


def retrain_once(s: Settings, master: str, timeout: float, tree: Path = ROOT) -> dict[str, Any]:
    """One ``streamrec retrain`` process; ``tree``: the checkout whose code runs."""
    argv = [
        sys.executable, "-m", "streams.cli", "retrain",
        "--master", master,
        "--publish", "candidate",
        "--idle-timeout", f"{IDLE_S:g}s",
        "--topic", s.topic_page_views,
    ]  # fmt: skip
    started = time.monotonic()
    env = child_env(s, PYTHONPATH=str(tree))
    done = subprocess.run(
        argv, env=env, capture_output=True, timeout=timeout, cwd=tree, check=False
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
    parser.add_argument("--runs", type=int, default=3, help="runs of retrain per size")
    parser.add_argument(
        "--other-runs", type=int, default=1, help="runs of replay, trainer and --before-tree"
    )
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--before-tree", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sizes = [int(x) for x in args.sizes.split(",") if x]
    before = args.before_tree.resolve() if args.before_tree else None
    result: dict[str, Any] = {
        "meta": {
            "machine": machine(),
            "master": args.master,
            "runs": args.runs,
            "other_runs": args.other_runs,
            "idle_timeout_s": IDLE_S,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": "python -m bench.retrain " + " ".join(argv or sys.argv[1:]),
            "tree": _commit(ROOT),
            "before_tree": _commit(before) if before else None,
        },
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp, bench_services(Path(tmp)) as (base, origin):
        result["meta"]["services"] = origin
        bench = Bench(base, origin, False, Path(tmp), Path(tmp))
        for n in sizes:
            result["sizes"][str(n)] = _bench_size(bench, n, args, before)
    result["meta"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "retrain.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (RESULTS / "retrain.md").write_text(report(result))
    print(report(result))
    return 0


def _bench_size(bench: Bench, n: int, args: Any, before: Path | None) -> dict[str, Any]:
    """Every command on one topic of ``n`` views, in turns."""
    s, ends = _topic_with(bench, n)
    timeout = 300 + n / 1_000
    runs: dict[str, list[dict[str, Any]]] = {
        "retrain": [],
        "before": [],
        "replay": [],
        "trainer": [],
    }
    for i in range(max(args.runs, args.other_runs)):
        if i < args.runs:
            runs["retrain"].append(retrain_once(s, args.master, timeout))
            assert runs["retrain"][-1]["events"] == n, runs["retrain"][-1]
        if i < args.other_runs:
            if before is not None:
                runs["before"].append(retrain_once(s, args.master, timeout, before))
            runs["replay"].append(replay_once(bench, s, timeout))
            trainer = bench.run_settings(
                "trainer", topic_page_views=s.topic_page_views, snapshot_interval=1.0
            )
            t = trainer_catch_up(bench, trainer, ends, timeout)
            runs["trainer"].append({**t, "wall_s": t["catch_up_s"]})
        log.info(
            "n=%d round %d: %s", n, i, {k: [r.get("wall_s") for r in v] for k, v in runs.items()}
        )
    out: dict[str, Any] = {}
    for name, rows in runs.items():
        walls = [r["wall_s"] for r in rows if r.get("wall_s") is not None]
        if rows:
            wall = _median(walls) if walls else None
            out[name] = {
                "events": n,
                "wall_s_median": wall,
                "events_per_s_wall": round(n / wall) if wall else None,
                "runs": rows,
            }
    return out


def _commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h"],
        capture_output=True,
        text=True,
        check=False,
    )
    commit = done.stdout.strip()
    # A tree unpacked with ``git archive`` has no history: say so instead of "at ".
    return f"{tree.name} at {commit}" if commit else f"{tree.name} (not a git checkout)"


_LABELS = {
    "retrain": "`streamrec retrain`",
    "before": "`streamrec retrain`, before",
    "replay": "`streamrec replay`",
    "trainer": "`streamrec trainer` catch-up",
}


def report(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        "# Retrain on Spark vs the online trainer and replay",
        "",
        f"`{meta['command']}` on {meta['machine']['cores']} cores "
        f"({meta['machine']['cpu']}), load average {meta['machine']['load_avg_at_start']} at "
        f"the start and {meta.get('load_avg_at_end')} at the end (the machine was shared: "
        f"compare rows of one size, measured in turns, not absolute times); "
        f"{meta['services']} broker; master `{meta['master']}`; medians of {meta['runs']} "
        f"retrain runs and {meta['other_runs']} of the others. Code: {_tree(meta['tree'])}"
        + (f"; before: {_tree(meta['before_tree'])}" if meta.get("before_tree") else "")
        + ".",
        "",
        "Wall time of the whole process: interpreter and Spark start-up, reading, "
        "aggregating, the 5,000-event online tail, publishing, and for retrain and replay "
        f"the {meta['idle_timeout_s']:g} s idle timeout that ends the read. The trainer's "
        "is its catch-up: start to the first snapshot that covers the topic.",
        "",
        "| events | command | wall s (median) | events/s | wall / retrain's | retrain phases (s) |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for n, commands in result["sizes"].items():
        ref = commands.get("retrain", {}).get("wall_s_median")
        for name, row in commands.items():
            wall = row["wall_s_median"]
            phases = ""
            if name in ("retrain", "before") and row["runs"]:
                runs = sorted(row["runs"], key=lambda r: r["wall_s"])
                phases = ", ".join(
                    f"{k} {v:g}" for k, v in runs[len(runs) // 2]["job_seconds"].items()
                )
            ratio = f"{wall / ref:.2f}x" if wall and ref else ""
            lines.append(
                f"| {int(n):,} | {_LABELS[name]} | {wall if wall is not None else 'failed'} | "
                f"{_thousands(row['events_per_s_wall'])} | {ratio} | {phases} |"
            )
    return "\n".join(lines) + "\n"


def _tree(text: str) -> str:
    """``name at hash`` (older results also carry the commit subject: dropped)."""
    name, _, rest = text.partition(": ")
    return f"{name} at {rest.split()[0]}" if rest else text


def _thousands(value: int | None) -> str:
    return f"{value:,}" if value else ""


if __name__ == "__main__":
    sys.exit(main())
