"""Snapshot format 1 (pickle) vs format 2 (manifest + safetensors) for one co-visitation model.

Run ``python -m bench.snapshot_format``; writes ``bench/results/snapshot_format.json``.
No broker, no Redis: the bench world (generator seed 7, 100k users, ``--pages`` pages)
trains the default model in process on ``--train`` events; then, for each format, the
median of ``--runs`` timings of:

- ``dump_s``: :func:`online_model.persist.snapshot.dump_snapshot` (what the trainer pays per
  publish, signing included);
- ``load_s``: :func:`online_model.persist.snapshot.load_snapshot` (what a scorer pays per hot swap);
- ``first_1000_recommend_s``: the loaded model's first 1,000 ``recommend`` calls on
  histories of the world's users (a hot-swapped model serves with cold caches);
- ``bytes``: the snapshot's size.

Both loads must give the same top-10 for every probe history (``same_answers``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from online_model.data.generate import generate
from online_model.persist.snapshot import Snapshot, SnapshotMeta, dump_snapshot, load_snapshot
from online_model.registry import DEFAULT_MODEL, make_model

RESULTS = Path(__file__).parent / "results"
KEY = b"bench-key"


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def run(pages: int, train: int, runs: int) -> dict[str, Any]:
    rows = generate(n_users=100_000, n_pages=pages, n_events=train, seed=7).rows()
    model = make_model(DEFAULT_MODEL, {})
    for user, page, ts, _ in rows:
        model.learn_one(user, page, x={"ts": ts})
    histories: dict[str, list[str]] = {}
    for user, page, _, _ in rows[-20_000:]:
        histories.setdefault(user, []).append(page)
    probes = [h[-50:] for h in list(histories.values())[:1000]]
    snap = Snapshot(SnapshotMeta("bench", events_seen=model.n_events_learned), model)
    times: dict[int, dict[str, list[float]]] = {
        v: {"dump_s": [], "load_s": [], "first_1000_recommend_s": []} for v in (1, 2)
    }
    sizes, answers = {}, {}
    for _ in range(runs):
        for version in (1, 2):  # interleaved: both formats see the same machine load
            dump_s, data = _timed(lambda v=version: dump_snapshot(snap, KEY, format_version=v))
            load_s, loaded = _timed(lambda d=data: load_snapshot(d, KEY, allow_pickle=True))
            serve_s, tops = _timed(
                lambda m=loaded.model: [
                    m.recommend("u", 10, history=h, exclude=set(h)) for h in probes
                ]
            )
            for name, value in (("dump_s", dump_s), ("load_s", load_s)):
                times[version][name].append(value)
            times[version]["first_1000_recommend_s"].append(serve_s)
            sizes[version], answers[version] = len(data), tops
    out: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "n_pages": model.n_items,
        "n_train": train,
        "runs": runs,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg()[0],
        },
        "formats": {
            f"v{v}": {
                "bytes": sizes[v],
                **{
                    name: {
                        "median": round(statistics.median(values), 4),
                        "min": round(min(values), 4),
                        "max": round(max(values), 4),
                    }
                    for name, values in times[v].items()
                },
            }
            for v in (1, 2)
        },
        "same_answers": answers[1] == answers[2],
    }
    v1, v2 = out["formats"]["v1"], out["formats"]["v2"]
    out["v2_over_v1"] = {"bytes": round(v2["bytes"] / v1["bytes"], 3)} | {
        name: round(v2[name]["median"] / v1[name]["median"], 3) for name in times[1]
    }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--train", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS / "snapshot_format.json")
    args = parser.parse_args(argv)
    result = run(args.pages, args.train, args.runs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
