"""Trainer throughput, model rebuild (replay) time and the trainer's peak memory.

One topic is filled with the world's training events (1M; quick: 200k). Then, per run:

* ``streamrec trainer`` starts from an empty snapshot store and catches up; its
  snapshots (every second) carry ``events_seen`` and the offsets consumed, so the
  learning rate *including* snapshotting is the slope of ``events_seen`` over
  ``created_at`` between the first snapshot and the one that covers the whole topic,
  and the catch-up time is from process start to that snapshot. Its VmHWM is read then.
* ``streamrec replay --publish candidate`` rebuilds a fresh model from the same topic
  (timed end to end as a process; it stops reading after ``--idle-timeout`` without a
  record, which is subtracted and stated).

The raw ``learn_one`` rate is measured in this process on the same events, right before
and right after each trainer run; each run's ratio is its rate over the mean of those two,
so a change of machine load between runs (the cores are shared) shifts both sides.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess
from streams.settings import Settings

from .harness import Bench, child_env, encode_rows, produce_all
from .report import paired_ratio, summary, target
from .world import World, learn, store_for

log = logging.getLogger(__name__)

REPLAY_IDLE_S = 1.0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_learn(rows: list[Any]) -> tuple[float, float]:
    """Raw ``learn_one`` of a fresh default model over ``rows``: (events per second,
    events per CPU second of this thread)."""
    started = time.thread_time()
    rate = learn(rows)[1]
    return rate, len(rows) / max(time.thread_time() - started, 1e-9)


def _covers(offsets: dict[str, dict[int, int]], topic: str, ends: dict[int, int]) -> bool:
    seen = offsets.get(topic, {})
    return all(seen.get(p, 0) >= end for p, end in ends.items())


def trainer_catch_up(
    bench: Bench,
    s: Settings,
    ends: dict[int, int],
    timeout: float,
) -> dict[str, Any]:
    store = store_for(s)
    child = ChildProcess.streamrec(["trainer"], child_env(s), bench.logs / "trainer.log")
    metas = []
    cpu: list[float | None] = []  # the trainer's CPU seconds when each snapshot was seen
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    done = False
    try:
        while not done and time.monotonic() < deadline:
            child.check()
            current = store.current_version()
            if current is not None and current not in seen:
                seen.add(current)
                cpu.append(cpu_seconds(child.pid))
                meta = store.read_meta(current)
                metas.append(meta)
                done = _covers(meta.offsets, s.topic_page_views, ends)
            time.sleep(0.05)
        rss = child.peak_rss_mb()
    finally:
        child.stop()
    if not done:
        log.warning("trainer did not catch up in %.0f s", timeout)
        return {
            "events_per_s": None,
            "events_per_cpu_s": None,
            "catch_up_s": None,
            "peak_rss_mb": rss,
        }
    first, last = metas[0], metas[-1]
    span = last.created_at - first.created_at
    rate = (last.events_seen - first.events_seen) / span if span > 0 else None
    cpu_first, cpu_last = cpu[0], cpu[-1]
    cpu_rate = None
    if cpu_first is not None and cpu_last is not None and cpu_last > cpu_first:
        cpu_rate = (last.events_seen - first.events_seen) / (cpu_last - cpu_first)
    out = {
        "events_per_s": rate,
        "events_per_cpu_s": cpu_rate,
        "catch_up_s": last.created_at - child.started,
        "events_seen": last.events_seen,
        "snapshots_seen": len(metas),
        "peak_rss_mb": rss,
    }
    log.info("trainer %s", out)
    return out


def replay_once(bench: Bench, s: Settings, timeout: float) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "streams.cli",
        "replay",
        "--publish",
        "candidate",
        "--idle-timeout",
        f"{REPLAY_IDLE_S:g}s",
        "--topic",
        s.topic_page_views,
    ]
    started = time.monotonic()
    done = subprocess.run(
        argv,
        env=child_env(s),
        capture_output=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        log.warning("replay failed: %s", done.stderr.decode(errors="replace")[-2000:])
        return {"seconds": None, "wall_s": wall}
    try:
        out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {}
    result = {
        "seconds": wall - REPLAY_IDLE_S,
        "wall_s": wall,
        "events": (out.get("replay") or {}).get("events"),
        "version": out.get("version"),
    }
    log.info("replay %s", result)
    return result


def bench_training(bench: Bench, world: World, runs: int) -> dict[str, dict[str, Any]]:
    base = bench.run_settings("train", snapshot_interval=1.0, snapshot_keep=1_000)
    ensure_topics(base)
    ends = produce_all(base, base.topic_page_views, encode_rows(world.train, "train"))
    n = sum(ends.values())
    timeout = 120 + n / 2_000
    trainer_runs = []
    raw = []
    raw_cpu = []
    raw_after, cpu_after = raw_learn(world.train)
    for _ in range(runs):
        s = bench.run_settings(
            "trainer",
            topic_page_views=base.topic_page_views,
            snapshot_interval=1.0,
            snapshot_keep=1_000,
        )
        raw_before, cpu_before = raw_after, cpu_after
        run = trainer_catch_up(bench, s, ends, timeout)
        raw_after, cpu_after = raw_learn(world.train)
        run["raw_learn_per_s"] = [round(raw_before), round(raw_after)]
        run["raw_learn_per_cpu_s"] = [round(cpu_before), round(cpu_after)]
        trainer_runs.append(run)
        raw.append(statistics.mean((raw_before, raw_after)))
        raw_cpu.append(statistics.mean((cpu_before, cpu_after)))
    rates = [r["events_per_s"] for r in trainer_runs]
    cpu_rates = [r["events_per_cpu_s"] for r in trainer_runs]
    trainer: dict[str, Any] = {
        "n_events": n,
        "events_per_s": summary(rates, 0),
        "raw_learn_per_s": summary(raw, 0),
        "trainer_over_raw": paired_ratio(rates, raw),
        "events_per_cpu_s": summary(cpu_rates, 0),
        "raw_learn_per_cpu_s": summary(raw_cpu, 0),
        "trainer_over_raw_cpu": paired_ratio(cpu_rates, raw_cpu),
        "catch_up_s": summary([r["catch_up_s"] for r in trainer_runs]),
        "peak_rss_mb": summary([r["peak_rss_mb"] for r in trainer_runs]),
        "runs": trainer_runs,
        "tuning": {
            "snapshot_interval": "1 s",
            "trainer poll": "500 records / 0.2 s",
            "model": world.describe()["model"],
        },
        "notes": [
            "trainer rate = slope of events_seen over created_at between its first "
            "snapshot and the one covering the whole topic: learning, the rolling "
            "quality estimate (the events of 1 user in 100 are judged before learning), "
            "Avro decode, Kafka fetch and the snapshots (full or delta: encode + HMAC + "
            "Redis) taken every second, or less often while the trainer is behind and "
            "they would take over a tenth of its time",
            "the trainer publishes as soon as it has read the log to its end after a "
            "backlog, so the snapshot covering the topic is taken when its last event is "
            "learned (plus at most one poll timeout, 0.2 s); before 2026-12-02 it came up "
            "to one snapshot_interval (1 s) later, idle time that counted as learning",
            "raw learn_one = a fresh default model (the trainer's) learning the same "
            "events with the same arguments in one Python loop, no decode, no Kafka, no "
            "snapshots (bench process), measured right before and after each trainer "
            "run; a run's ratio uses the mean of the two",
            "per CPU second: the same events over the CPU time the trainer process (all "
            "its threads: librdkafka's too) used between the two snapshots, read from "
            "/proc when the bench sees each snapshot, and raw learn_one over the CPU time "
            "of its thread. On shared cores the wall-clock ratio mostly says how the "
            "scheduler split them; this one says how much work an event costs. The "
            "target is judged on the wall-clock ratio",
        ],
    }
    trainer["targets"] = [
        target(
            trainer["trainer_over_raw"]["median"], 0.5, True, "trainer >= 50% of raw learn_one rate"
        )
    ]
    replay_cli = Path(__file__).resolve().parent.parent / "streams" / "cli" / "replay.py"
    if replay_cli.is_file():
        replay_runs = []
        for _ in range(runs):
            s = bench.run_settings("replay", topic_page_views=base.topic_page_views)
            replay_runs.append(replay_once(bench, s, timeout))
        seconds = summary([r["seconds"] for r in replay_runs])
        method = "streamrec replay"
        replay_notes = [
            f"`streamrec replay --publish candidate --idle-timeout {REPLAY_IDLE_S:g}s` timed as "
            "a process (start, read, test-then-train, sign and store); the idle timeout it "
            "waits after the last record is subtracted",
            "trainer catch-up from an empty store on the same topic, for comparison: "
            f"{trainer['catch_up_s']['median']} s (median)",
        ]
    else:
        replay_runs = trainer_runs
        seconds = trainer["catch_up_s"]
        method = "trainer catch-up"
        replay_notes = [
            "`streamrec replay` was not available: this is the trainer catching "
            "up from an empty snapshot store on the same topic"
        ]
    goal = 60.0 * n / 1_000_000
    replay = {
        "n_events": n,
        "method": method,
        "seconds": seconds,
        "runs": replay_runs,
        "notes": replay_notes,
        "targets": [
            target(
                seconds["median"],
                goal,
                False,
                f"rebuild of {n:,} events <= {goal:.0f} s (60 s per 1M)",
            )
        ],
    }
    return {"trainer": trainer, "replay": replay}
