"""``streamrec retrain`` for the sizing bench: its Spark phases' seconds and the CPU
seconds of its process tree (the Python driver and the JVM it starts) on ``local[N]``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from online_model.data.generate import generate
from streams.io.topics import ensure_topics
from streams.settings import Settings

from .harness import Bench, encode_rows, produce_all
from .retrain import retrain_once
from .training import cpu_seconds

log = logging.getLogger(__name__)


def retrain_topic(bench: Bench, n: int) -> Settings:
    """A fresh topic of ``n`` generated views (users = n / 50, 2,000 pages)."""
    s = bench.run_settings(f"sz-retrain{n}")
    ensure_topics(s, [s.topic_page_views])
    rows = generate(n_users=max(50, n // 50), n_pages=2_000, n_events=n, seed=42).rows()
    produce_all(s, s.topic_page_views, encode_rows(rows, f"r{n}"))
    return s


class TreeCPU(threading.Thread):
    """Every 0.2 s, the CPU seconds of each process under this one's children whose
    command line holds ``marker`` (the Python child and the JVM it starts, which it does
    not reap, so RUSAGE_CHILDREN misses it); the sum of the last readings at the end."""

    def __init__(self, marker: str) -> None:
        super().__init__(daemon=True)
        self.marker, self.last, self.done = marker, dict[int, float](), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            parents = {}
            for stat in Path("/proc").glob("[0-9]*/stat"):
                with contextlib.suppress(OSError, IndexError, ValueError):
                    parents[int(stat.parent.name)] = int(
                        stat.read_text().rsplit(")", 1)[1].split()[1]
                    )
            roots = {
                pid for pid, ppid in parents.items()
                if ppid == os.getpid() and self.marker in _cmdline(pid)
            }  # fmt: skip
            tree = set(roots)
            while grown := {p for p, pp in parents.items() if pp in tree} - tree:
                tree |= grown
            for pid in tree:
                if (cpu := cpu_seconds(pid)) is not None:
                    self.last[pid] = cpu

    def stop(self) -> float:
        self.done.set()
        self.join()
        return sum(self.last.values())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def retrain_point(s: Settings, n: int, master: str) -> dict[str, Any]:
    """One ``streamrec retrain --master master``: its phases' seconds, its wall time and
    the CPU seconds of its process tree (Python driver and Spark's JVM), sampled."""
    watch = TreeCPU("retrain")
    watch.start()
    try:
        run = retrain_once(s, master, 600 + n / 1_000)
    finally:
        cpu = watch.stop()
    phases = run["job_seconds"]
    out = {
        "master": master,
        "events": run["events"],
        "wall_s": run["wall_s"],
        "spark_s": phases["read"] + phases["aggregate"],
        "phases_s": phases,
        "tree_cpu_s": cpu,
    }
    log.info("retrain %s", json.dumps(out))
    return out
