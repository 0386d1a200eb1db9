"""Full vs delta snapshots of the default model, at 10k and 100k pages, side by side.

Run ``python -m bench.snapshot_deltas [--quick]``; writes
``bench/results/snapshot_deltas.{json,md}``. No broker, no Redis: for each page count the
bench world's generator (seed 7, 100k users) trains the default model in process on
``--train`` events, then ``--runs`` intervals of ``--interval-events`` more events follow
(1,000 = one second of traffic at 1k ev/s, the trainer's default interval). After each
interval, timed on the same model:

- ``full``: :func:`online_model.persist.snapshot.dump_snapshot` (what the trainer paid per publish
  before deltas, signing included) and its bytes;
- ``delta``: ``state_delta()`` + :func:`online_model.persist.snapshot_delta.dump_delta` (what it
  pays now) and its bytes;
- ``apply``: what a scorer holding the previous version pays: verify and parse the delta
  (:func:`~online_model.persist.snapshot_delta.read_delta`) and build the next model
  (:func:`~online_model.persist.snapshot_delta.apply_delta`);
- ``load_full``: what it paid before: :func:`online_model.persist.snapshot.load_snapshot` of the
  full file.

Each applied delta is checked to give, byte for byte, the full snapshot's tensors
(``exact``). Publishing to Redis adds one SET of those bytes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from online_model.data.generate import generate
from online_model.persist.model_file import _tensor_bytes
from online_model.persist.snapshot import Snapshot, SnapshotMeta, dump_snapshot, load_snapshot
from online_model.persist.snapshot_delta import ChainPosition, apply_delta, dump_delta, read_delta
from online_model.registry import DEFAULT_MODEL, make_model

from .report import write_pair
from .snapshot_format import _timed

RESULTS = Path(__file__).parent / "results"
KEY = b"bench-key-bench-key-bench-key-32"


def _stats(values: list[float], digits: int = 4) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def run(pages: int, train: int, interval_events: int, runs: int) -> dict[str, Any]:
    rows = generate(
        n_users=100_000, n_pages=pages, n_events=train + runs * interval_events, seed=7
    ).rows()
    model: Any = make_model(DEFAULT_MODEL, {})
    for user, page, ts, _ in rows[:train]:
        model.learn_one(user, page, x={"ts": ts})
    full = dump_snapshot(Snapshot(SnapshotMeta("bench", version=1), model), KEY)
    held = load_snapshot(full, KEY)
    model.mark_published()
    position = ChainPosition.after(held.meta, None)
    out: dict[str, list[float]] = {
        k: [] for k in ("full_s", "full_bytes", "delta_s", "delta_bytes", "apply_s", "load_full_s")
    }
    exact = True
    for run_no in range(runs):
        start = train + run_no * interval_events
        for user, page, ts, _ in rows[start : start + interval_events]:
            model.learn_one(user, page, x={"ts": ts})
        version = run_no + 2
        link = position.next_link()
        delta_s, delta = _timed(
            lambda v=version, lk=link: dump_delta(
                SnapshotMeta("bench", version=v), model, model.state_delta(), lk, {}, KEY
            )
        )
        full_s, full = _timed(
            lambda v=version: dump_snapshot(Snapshot(SnapshotMeta("bench", version=v), model), KEY)
        )
        apply_s, held = _timed(lambda d=delta, h=held: apply_delta(h, read_delta(d, KEY)))
        load_s, loaded = _timed(lambda f=full: load_snapshot(f, KEY))
        exact &= _tensor_bytes(held.image.state) == _tensor_bytes(loaded.image.state)
        position = ChainPosition.after(held.meta, link)
        model.mark_published()
        for name, value in (
            ("full_s", full_s),
            ("full_bytes", len(full)),
            ("delta_s", delta_s),
            ("delta_bytes", len(delta)),
            ("apply_s", apply_s),
            ("load_full_s", load_s),
        ):
            out[name].append(value)
    result: dict[str, Any] = {
        "catalogue_pages": pages,
        "n_pages": model.n_items,
        "n_users_buffered": len(model._histories),
        "n_train": train,
        "interval_events": interval_events,
        "runs": runs,
        "exact": exact,
    }
    for name, values in out.items():
        result[name] = _stats(values, 0 if name.endswith("bytes") else 4)
    result["delta_over_full"] = {
        "bytes": round(result["delta_bytes"]["median"] / result["full_bytes"]["median"], 4),
        "publish_s": round(result["delta_s"]["median"] / result["full_s"]["median"], 4),
        "scorer_s": round(result["apply_s"]["median"] / result["load_full_s"]["median"], 4),
    }
    return result


def report(out: dict[str, Any]) -> str:
    lines = [
        "# Snapshot publishing: full vs delta (default model)",
        "",
        f"`python -m bench.snapshot_deltas` — {out['interval_events']:,} events between "
        f"snapshots (1 s at 1k ev/s), median of {out['runs']} intervals, one process, "
        "no Redis. Publish = build + sign the file; scorer = verify + parse + build the "
        "next model.",
        "",
        "Generator catalogues of "
        + " and ".join(f"{r['catalogue_pages']:,}" for r in out["sizes"])
        + f" pages; {out['sizes'][0]['n_train']:,} training events reach the page counts below.",
        "",
        "| pages | full bytes | delta bytes | full publish | delta publish | "
        "scorer: load full | scorer: apply delta | exact |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in out["sizes"]:
        lines.append(
            f"| {r['n_pages']:,} | {r['full_bytes']['median']:,.0f} | "
            f"{r['delta_bytes']['median']:,.0f} ({r['delta_over_full']['bytes']:.1%}) | "
            f"{r['full_s']['median'] * 1000:,.0f} ms | {r['delta_s']['median'] * 1000:,.1f} ms | "
            f"{r['load_full_s']['median'] * 1000:,.0f} ms | "
            f"{r['apply_s']['median'] * 1000:,.0f} ms | "
            f"{'yes' if r['exact'] else 'NO'} |"
        )
    lines += [
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in out["machine"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--train", type=int, default=300_000)
    parser.add_argument("--interval-events", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100k training events, 3 runs")
    parser.add_argument("--output", type=Path, default=RESULTS / "snapshot_deltas.json")
    args = parser.parse_args(argv)
    train, runs = (100_000, 3) if args.quick else (args.train, args.runs)
    out: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "interval_events": args.interval_events,
        "runs": runs,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 2),
        },
        "sizes": [run(pages, train, args.interval_events, runs) for pages in args.pages],
    }
    write_pair(args.output, out, report(out))
    print(report(out))


if __name__ == "__main__":
    main()
