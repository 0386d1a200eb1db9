"""Micro-bench of the scorer's per-event work: decode, recommend, encode, whole ``score``.

Run ``python -m bench.hotpath``; writes ``bench/results/hotpath.json``. No broker, no
Redis: the same world as the pipeline bench (``bench/world.py``: generator seed 7, 100k
users, 10k pages) trains the default model in process on its first ``--train`` events; the
next ``--events`` events, by users who already have a history, are framed as Kafka
messages and scored in batches of ``--batch`` by :class:`streams.scorer.core.ScoringCore`,
each user starting with their last 50 training pages as history (what Redis would hold).

Stages, in µs per event (median of ``--runs`` passes over all batches):

- ``decode``: ``ScoringCore.decode`` (Avro body + framing + key check);
- ``recommend``: ``ScoringCore.recommend`` (what ``score`` calls per event: the model's
  ``recommend`` with the history excluded), on the histories ``score`` would pass;
- ``encode``: the Avro encode of each Recommendation record;
- ``score``: ``ScoringCore.score`` on a fresh copy of the batch's user state (everything
  the scorer does between the Redis read and the send).

Beside them, ``learn_per_s``: the raw ``learn_one`` rate of the training pass, and
``recommend_cold_us``: ``recommend`` on the first pass over the events by a freshly
unpickled copy of the model (per-item caches empty, as after a hot swap).

``--model NAME`` serves another model (one with a batch layer gets a layer fit on the
training events); ``--against NAME`` runs model ``NAME`` on the same tree as the baseline,
alternating processes as below, e.g. ``--model hybrid --against covisit``.

``--baseline REV`` also runs this same script against the tree of git revision ``REV``
(extracted with ``git archive`` into a temporary directory), alternating the two in
separate processes for ``--rounds`` rounds, so before/after come from one run on one
machine load; ``--current REV`` measures a revision instead of the working tree. A digest
of every recommended list (items and exact scores) is compared between the two, so a
speed-up that changed the answers is reported as such.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
STAGES = ("decode", "recommend", "encode", "score")

log = logging.getLogger(__name__)


def _world(
    n_pages: int,
    n_users: int,
    n_train: int,
    n_events: int,
    history_length: int,
) -> tuple[list[Any], dict[str, list[str]], list[Any]]:
    from online_model.data.generate import generate

    rows = generate(
        n_users=n_users, n_pages=n_pages, n_events=n_train + 4 * n_events, seed=7
    ).rows()
    train = rows[:n_train]
    histories: dict[str, list[str]] = {}
    for user, page, _, _ in train:
        hist = histories.setdefault(user, [])
        hist.append(page)
        if len(hist) > 2 * history_length:
            del hist[:history_length]
    histories = {u: h[-history_length:] for u, h in histories.items()}
    score = [r for r in rows[n_train:] if r[0] in histories][:n_events]
    return train, histories, score


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Train, then time each stage; returns the figures of this tree."""
    from online_model.registry import DEFAULT_MODEL, make_model
    from streams.io.codec import PAGE_VIEW, AvroCodec
    from streams.io.dlq import RawMessage
    from streams.scorer.core import ScoringCore
    from streams.scorer.model_holder import ModelHolder, Served
    from streams.state.history import UserState

    train, histories, score_rows = _world(
        args.pages, args.users, args.train, args.events, args.history
    )
    from online_model.evaluation import Retrainable

    model_name = args.model or DEFAULT_MODEL
    model = make_model(model_name, {})
    learn_one = model.learn_one
    started = time.perf_counter()
    for user, page, ts, _ in train:
        learn_one(user, page, x={"ts": ts})
    learn_per_s = len(train) / (time.perf_counter() - started)
    if isinstance(model, Retrainable):  # serve it as a retrain would: a layer over it all
        model.set_batch_layer(model.fit_batch_layer([(u, p, t) for u, p, t, _ in train]))

    holder = ModelHolder()
    holder.current = Served(model, 1, time.time(), None, type(model).__name__)
    core = ScoringCore(holder, model_name, k=args.k, history_length=args.history)
    pv = AvroCodec.bundled(PAGE_VIEW)
    messages = [
        RawMessage(
            "page-views",
            0,
            i,
            user.encode(),
            pv.encode({"event_id": f"e{i}", "user_id": user, "page_id": page, "ts": ts}),
        )
        for i, (user, page, ts, _) in enumerate(score_rows)
    ]
    batches = [messages[i : i + args.batch] for i in range(0, len(messages), args.batch)]
    decoded = [core.decode(b)[0] for b in batches]

    # The history each recommend call sees, as ``score`` builds it (batch by batch from
    # the stored histories; a user's earlier events in the batch are appended).
    calls: list[list[tuple[str, list[str]]]] = []
    for views in decoded:
        state = {v.user: list(histories[v.user]) for v in views}
        batch_calls = []
        for v in views:
            hist = state[v.user]
            hist.append(str(v.record["page_id"]))
            if len(hist) > args.history:
                del hist[: len(hist) - args.history]
            batch_calls.append((v.user, list(hist)))
        calls.append(batch_calls)
    served = holder.current
    # Cold: the first pass of a freshly loaded snapshot (what a scorer does after a swap).
    fresh = pickle.loads(pickle.dumps(model, protocol=5))
    cold_served = Served(fresh, 1, time.time(), None, type(fresh).__name__)
    t0 = time.perf_counter()
    for bc in calls:
        for u, h in bc:
            core.recommend(cold_served, u, h)
    recommend_cold = (time.perf_counter() - t0) / len(messages) * 1e6
    del fresh, cold_served
    recs = [[core.recommend(served, u, h) for u, h in bc] for bc in calls]  # warm caches
    digest_items = hashlib.sha256(repr([[i for i, _ in r] for b in recs for r in b]).encode())
    digest_scores = hashlib.sha256(repr([r for b in recs for r in b]).encode())
    now = int(time.time() * 1000)
    records = [
        [
            {
                "event_id": v.record["event_id"],
                "user_id": v.user,
                "items": [{"page_id": i, "score": s} for i, s in r],
                "model_name": model_name,
                "model_version": 1,
                "page_view_ts": v.record["ts"],
                "produced_at": now,
                "arm": "",
            }
            for v, r in zip(views, rs, strict=True)
        ]
        for views, rs in zip(decoded, recs, strict=True)
    ]
    n = len(messages)

    def run_decode() -> None:
        for b in batches:
            core.decode(b)

    def run_recommend() -> None:
        rec = core.recommend
        for bc in calls:
            for u, h in bc:
                rec(served, u, h)

    def run_encode() -> None:
        enc = core.recommendations.encode
        for rs in records:
            for r in rs:
                enc(r)

    def run_score() -> float:
        total = 0.0
        for views in decoded:
            state = UserState({v.user: list(histories[v.user]) for v in views}, {})
            t0 = time.perf_counter()
            core.score(views, state)
            total += time.perf_counter() - t0
        return total

    timings: dict[str, list[float]] = {s: [] for s in STAGES}
    for _ in range(args.runs):
        for stage, fn in (
            ("decode", run_decode),
            ("recommend", run_recommend),
            ("encode", run_encode),
        ):
            t0 = time.perf_counter()
            fn()
            timings[stage].append((time.perf_counter() - t0) / n * 1e6)
        timings["score"].append(run_score() / n * 1e6)
    return {
        "us_per_event": {s: round(statistics.median(v), 2) for s, v in timings.items()},
        "runs_us": {s: [round(x, 2) for x in v] for s, v in timings.items()},
        "learn_per_s": round(learn_per_s),
        "recommend_cold_us": round(recommend_cold, 2),
        "n_events": n,
        "mean_history": round(statistics.fmean(len(h) for bc in calls for _, h in bc), 1),
        "digest_items": digest_items.hexdigest()[:16],
        "digest_scores": digest_scores.hexdigest()[:16],
    }


def _extract(rev: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "online_model", "streams", "schemas", "bench"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    shutil.copy(Path(__file__), into / "bench" / "hotpath.py")  # same bench on both trees


def _child(tree: Path, argv: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.hotpath", "--child", *argv],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    runs = {s: [x for r in results for x in r["runs_us"][s]] for s in STAGES}
    return {
        "us_per_event": {s: round(statistics.median(v), 2) for s, v in runs.items()},
        "runs_us": runs,
        "learn_per_s": round(statistics.median(r["learn_per_s"] for r in results)),
        "learn_per_s_runs": [r["learn_per_s"] for r in results],
        "recommend_cold_us": round(statistics.median(r["recommend_cold_us"] for r in results), 2),
        **{k: results[0][k] for k in ("n_events", "mean_history", "digest_items", "digest_scores")},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--train", type=int, default=200_000, help="events the model learns")
    parser.add_argument("--events", type=int, default=5_000, help="events scored per run")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--history", type=int, default=50, help="history length kept")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5, help="timed passes per process")
    parser.add_argument("--baseline", metavar="REV", help="also run git revision REV")
    parser.add_argument("--model", help="model served (default: the registry's default)")
    parser.add_argument(
        "--against",
        metavar="MODEL",
        help="also run MODEL on the same tree as the baseline (alternating processes)",
    )
    parser.add_argument(
        "--current", metavar="REV", help="measure git revision REV instead of the working tree"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating processes per tree with --baseline"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "hotpath.json")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args)))
        return
    child_argv = [
        f"--{a}={getattr(args, a)}"
        for a in ("pages", "users", "train", "events", "batch", "history", "k", "runs")
    ] + ([f"--model={args.model}"] if args.model else [])
    config = {
        a: getattr(args, a)
        for a in ("pages", "users", "train", "events", "batch", "history", "k", "runs", "model")
    }
    out: dict[str, Any] = {
        "config": config,
        "machine": {
            "python": platform.python_version(),
            "cores": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "loadavg_start": os.getloadavg(),
        },
    }
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "online_model", "streams"],
        capture_output=True,
        text=True,
    ).stdout
    out["tree"] = args.current or head + ("+dirty" if dirty.strip() else "")
    with tempfile.TemporaryDirectory(prefix="hotpath-") as tmp:
        tree = ROOT
        if args.current:
            tree = Path(tmp) / "current"
            tree.mkdir()
            _extract(args.current, tree)
        if args.against:
            args.baseline = f"model {args.against}"
            base_tree, base_argv = tree, [*child_argv, f"--model={args.against}"]
        elif args.baseline:
            base_tree, base_argv = Path(tmp) / "baseline", child_argv
            base_tree.mkdir()
            _extract(args.baseline, base_tree)
        if args.baseline:
            base_results, new_results = [], []
            for r in range(args.rounds):
                log.info("round %d/%d: baseline %s", r + 1, args.rounds, args.baseline)
                base_results.append(_child(base_tree, base_argv))
                log.info("round %d/%d: %s", r + 1, args.rounds, out["tree"])
                new_results.append(_child(tree, child_argv))
        else:
            new_results = [_child(tree, child_argv) for _ in range(args.rounds)]
    if args.baseline:
        base, new = _merge(base_results), _merge(new_results)
        out["baseline"] = {"rev": args.baseline, **base}
        out["current"] = new
        out["speedup"] = {
            s: round(base["us_per_event"][s] / new["us_per_event"][s], 2) for s in STAGES
        }
        out["same_items"] = base["digest_items"] == new["digest_items"]
        out["same_scores"] = base["digest_scores"] == new["digest_scores"]
        out["learn_ratio"] = round(new["learn_per_s"] / base["learn_per_s"], 3)
    else:
        out["current"] = _merge(new_results)
    text = json.dumps(out, indent=2)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(_table(out))


def _table(out: dict[str, Any]) -> str:
    cur = out["current"]["us_per_event"]
    if "baseline" not in out:
        return "\n".join(f"{s:>10}: {cur[s]:8.2f} µs/event" for s in STAGES) + (
            f"\n learn_one: {out['current']['learn_per_s']:,}/s"
        )
    base = out["baseline"]["us_per_event"]
    lines = [f"{'stage':>10} {'baseline':>10} {'current':>10} {'speedup':>8}  (µs/event)"]
    lines += [f"{s:>10} {base[s]:10.2f} {cur[s]:10.2f} {out['speedup'][s]:7.2f}x" for s in STAGES]
    lines.append(
        f"{'rec. cold':>10} {out['baseline']['recommend_cold_us']:10.2f} "
        f"{out['current']['recommend_cold_us']:10.2f}"
    )
    lines.append(
        f"{'learn/s':>10} {out['baseline']['learn_per_s']:10,} "
        f"{out['current']['learn_per_s']:10,} {out['learn_ratio']:7.3f}x"
    )
    lines.append(f"same items: {out['same_items']}, same scores: {out['same_scores']}")
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
