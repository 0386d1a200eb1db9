"""The measurements behind the sizing table, each on real processes and the real Redis.

* :func:`model_point`: one world (users, pages, events) in a topic; ``streamrec trainer``
  catches up on it (CPU seconds per event from /proc between its first snapshot and the
  one covering the topic, peak RSS); the model's shape (users buffered, pages, links)
  and full-snapshot bytes are read back from Redis; then ``streamrec scorer`` loads that
  model (RSS once ready) and scores the world's next events in phases (its CPU seconds
  per event from /proc net of its idle rate, and the Redis server's from INFO cpu).
* :func:`history_points`: Redis ``used_memory`` as users' histories and served lists
  are written (with the scorer's own :class:`HistoryStore`), and MEMORY USAGE per key.
* :func:`shard_point`: ``streamrec trainer --shard i/N`` processes on one world: each
  shard's RSS and CPU, and the shapes of the partitions' models and of their merge.

``streamrec retrain`` is measured in ``bench.sizing_retrain``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.history import HistoryStore, HistoryUpdate
from streams.state.keys import ModelKeys
from streams.trainer.merger import partition_namespace

from .harness import (
    Bench,
    TopicTail,
    bulk_producer,
    child_env,
    encode_rows,
    paced,
    produce_all,
    seed_histories,
)
from .training import cpu_seconds
from .world import make_world, store_for

log = logging.getLogger(__name__)

#: The trainer keeps a buffer for every user it sees (the default LRU holds 100k).
TRAINER_PARAMS = "max_users=100000000"


def proc_kb(pid: int, field: str) -> int | None:
    """A ``/proc/<pid>/status`` field in kB (VmRSS, VmHWM), None where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _covers(offsets: dict[str, dict[int, int]], topic: str, ends: dict[int, int]) -> bool:
    seen = offsets.get(topic, {})
    return all(seen.get(p, 0) >= end for p, end in ends.items())


def trainer_run(bench: Bench, s: Settings, ends: dict[int, int], timeout: float) -> dict[str, Any]:
    """``streamrec trainer`` from an empty store until a snapshot covers the topic."""
    store = store_for(s)
    env = child_env(s, STREAMREC_MODEL_PARAMS=TRAINER_PARAMS)
    child = ChildProcess.streamrec(["trainer"], env, bench.logs / "sizing-trainer.log")
    marks: list[tuple[int, float | None]] = []  # (events_seen, trainer CPU s) per snapshot
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    version = None
    try:
        while version is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"trainer did not catch up in {timeout:.0f} s")
            child.check()
            current = store.current_version()
            if current is not None and current not in seen:
                seen.add(current)
                meta = store.read_meta(current)
                marks.append((meta.events_seen, cpu_seconds(child.pid)))
                if _covers(meta.offsets, s.topic_page_views, ends):
                    version = current
            time.sleep(0.05)
        rss_kb, hwm_kb = proc_kb(child.pid, "VmRSS"), proc_kb(child.pid, "VmHWM")
    finally:
        child.stop()
    (e0, c0), (e1, c1) = marks[0], marks[-1]
    cpu_total = c1
    cpu_per_event = (c1 - c0) / (e1 - e0) if c0 is not None and c1 is not None and e1 > e0 else None
    snap = store.load(version)
    state = snap.model.state_arrays()  # type: ignore[attr-defined]
    return {
        "events": e1,
        "cpu_s_per_event": cpu_per_event,
        "cpu_events": e1 - e0,
        "cpu_s_at_cover": cpu_total,
        "rss_bytes": (rss_kb or 0) * 1024,
        "peak_rss_bytes": (hwm_kb or 0) * 1024,
        "users": len(state.strings["users"]),
        "pages": len(state.strings["pages"]),
        "links": len(state.arrays["neighbours.page"]),
        "snapshot_bytes": len(store.full_bytes(version)),
        "version": version,
    }


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def redis_cpu_s(s: Settings) -> float:
    """The Redis server's own CPU seconds (user + system), from INFO cpu."""
    client = s.redis_client()
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class _Scored:
    """The scorer's outputs read so far."""

    def __init__(self, s: Settings) -> None:
        self.tail = TopicTail(s, s.topic_recommendations)
        self.count = 0

    def wait(self, n: int, child: ChildProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"scorer answered {self.count} of {n} in {timeout:.0f} s")
            self.count += len(self.tail.poll(0.2))
            child.check()


def scorer_run(
    bench: Bench,
    model_name: str,
    rows: list[Any],
    histories: dict[str, list[str]],
    phases: list[int],
    paced_rate: float,
    paced_n: int,
) -> dict[str, Any]:
    """A kafka-engine scorer serving ``model_name``: RSS once ready, then a warm-up of
    1,000 events, then each phase of ``phases`` events produced at once (a backlog), then
    ``paced_n`` events at ``paced_rate``/s. CPU per phase is net of the scorer's idle rate."""
    s = bench.run_settings("sz-scorer", model_name=model_name, scorer_engine="kafka")
    ensure_topics(s)
    seed_histories(s, histories)
    child = ChildProcess.streamrec(["scorer"], child_env(s), bench.logs / "sizing-scorer.log")
    scored = _Scored(s)
    out: dict[str, Any] = {"phases": []}
    try:
        wait_for(lambda: _ready(s.web_port), 180, "scorer ready")
        child.check()
        time.sleep(1.0)
        out["ready_rss_bytes"] = (proc_kb(child.pid, "VmRSS") or 0) * 1024
        c0, t0 = cpu_seconds(child.pid) or 0.0, time.monotonic()
        time.sleep(2.0)
        idle = ((cpu_seconds(child.pid) or 0.0) - c0) / (time.monotonic() - t0)
        out["idle_cpu_per_s"] = idle
        sent = 0
        for kind, n in (
            [("warm-up", 1_000)] + [("backlog", n) for n in phases] + [("paced", paced_n)]
        ):
            part = encode_rows(rows[sent : sent + n], f"sz{sent}")
            c0, r0, t0 = cpu_seconds(child.pid) or 0.0, redis_cpu_s(s), time.monotonic()
            if kind == "paced":
                producer = bulk_producer(s)
                for i in paced(producer, len(part), paced_rate):
                    producer.produce(s.topic_page_views, part[i][1], part[i][0])
                producer.flush(30)
            else:
                produce_all(s, s.topic_page_views, part)
            sent += len(part)
            scored.wait(sent, child, 120 + n / 200)
            wall = time.monotonic() - t0
            cpu = (cpu_seconds(child.pid) or 0.0) - c0 - idle * wall
            out["phases"].append(
                {
                    "kind": kind,
                    "events": len(part),
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "cpu_s_per_event": cpu / len(part),
                    "redis_cpu_s_per_event": (redis_cpu_s(s) - r0) / len(part),
                }
            )
        out["rss_bytes"] = (proc_kb(child.pid, "VmRSS") or 0) * 1024
        out["peak_rss_bytes"] = (proc_kb(child.pid, "VmHWM") or 0) * 1024
    finally:
        scored.tail.close()
        child.stop()
    return out


def model_point(
    bench: Bench, users: int, pages: int, events: int, phases: list[int], paced_s: float
) -> dict[str, Any]:
    """One world: the trainer on its first ``events``, a scorer on the following ones."""
    paced_rate = 1_000.0
    n_score = 1_000 + sum(phases) + int(paced_rate * paced_s)
    world = make_world(users, pages, events, n_score)
    s = bench.run_settings(f"sz{users}-{pages}")
    ensure_topics(s, [s.topic_page_views])
    ends = produce_all(s, s.topic_page_views, encode_rows(world.train, f"t{users}"))
    trainer = trainer_run(bench, s, ends, 180 + events / 1_000)
    log.info("trainer users=%d pages=%d %s", users, pages, trainer)
    histories = world.start_histories(s.history_length)
    scorer = scorer_run(
        bench, s.model_name, world.score, histories, phases, paced_rate, int(paced_rate * paced_s)
    )
    log.info("scorer users=%d pages=%d %s", users, pages, scorer)
    return {
        "world": {"users": users, "pages": pages, "events": events},
        "trainer": trainer,
        "scorer": scorer,
    }


def history_points(
    bench: Bench, scales: list[int], id_length: int, length: int, k: int
) -> dict[str, Any]:
    """Redis ``used_memory`` over ``scales`` users, each with ``length`` pages and a
    served list of ``k``, page and user ids ``id_length`` characters long."""
    s = bench.run_settings(f"sz-hist{id_length}")
    client = s.redis_client(socket_timeout=30)
    store = HistoryStore(client, s.model_name, length, s.history_ttl_s)
    keys = ModelKeys(s.model_name)
    rng = random.Random(7)

    def ident(prefix: str, i: int) -> str:
        return (prefix + str(i)).ljust(id_length, "x")

    def memory() -> int:
        return int(client.info("memory")["used_memory"])

    start, done, points = memory(), 0, []
    for n in scales:
        while done < n:
            part = range(done, min(n, done + 2_000))
            pages = {
                ident("u", u): [ident("p", rng.randrange(10**6)) for _ in range(length)]
                for u in part
            }
            served = {u: h[:k] for u, h in pages.items()}
            if not store.write(HistoryUpdate(appends=pages, served=served)):
                raise RuntimeError("could not write histories")
            done = part.stop
        points.append({"users": n, "used_memory": memory() - start})
    sample = [ident("u", i) for i in range(0, done, max(1, done // 200))]
    usage = {
        "history": [client.memory_usage(keys.history(u), samples=0) for u in sample],
        "served": [client.memory_usage(keys.served(u), samples=0) for u in sample],
    }
    for i in range(0, done, 2_000):
        client.unlink(
            *(
                k
                for u in range(i, min(done, i + 2_000))
                for k in (keys.history(ident("u", u)), keys.served(ident("u", u)))
            )
        )
    client.close()
    return {"id_length": id_length, "length": length, "k": k, "points": points, "usage": usage}


def _state_shape(store: Any, version: int) -> dict[str, int]:
    state = store.load(version).model.state_arrays()
    return {
        "users": len(state.strings["users"]),
        "pages": len(state.strings["pages"]),
        "links": len(state.arrays["neighbours.page"]),
    }


def shard_point(
    bench: Bench, users: int, pages: int, events: int, shards: int, partitions: int
) -> dict[str, Any]:
    """``shards`` processes of ``streamrec trainer --shard i/N`` on one world in a topic of
    ``partitions`` partitions, until the merged model covers it: each shard's RSS and
    CPU, and the shape of each partition's model and of the merged one."""
    world = make_world(users, pages, events, 0)
    s = bench.run_settings(f"szshard{shards}", partitions=partitions)
    ensure_topics(s, [s.topic_page_views])
    ends = produce_all(s, s.topic_page_views, encode_rows(world.train, f"sh{users}"))
    store = store_for(s)
    children = [
        ChildProcess.streamrec(
            ["trainer", "--shard", f"{i}/{shards}"],
            child_env(s, STREAMREC_MODEL_PARAMS=TRAINER_PARAMS),
            bench.logs / f"sizing-shard-{i}.log",
        )
        for i in range(shards)
    ]
    deadline = time.monotonic() + 300 + events / 500
    version = None
    try:
        while version is None:
            if time.monotonic() > deadline:
                raise TimeoutError("trainer shards did not catch up")
            for child in children:
                child.check()
            current = store.current_version()
            if current is not None and _covers(
                store.read_meta(current).offsets, s.topic_page_views, ends
            ):
                version = current
            time.sleep(0.1)
        procs = [
            {
                "shard": f"{i}/{shards}",
                "partitions": [p for p in range(partitions) if p % shards == i],
                "rss_bytes": (proc_kb(c.pid, "VmRSS") or 0) * 1024,
                "peak_rss_bytes": (proc_kb(c.pid, "VmHWM") or 0) * 1024,
                "cpu_s": cpu_seconds(c.pid),
            }
            for i, c in enumerate(children)
        ]
    finally:
        for child in children:
            child.stop()
    parts = {}
    for p in range(partitions):
        part = store_for(dataclasses.replace(s, model_name=partition_namespace(s.model_name, p)))
        if (v := part.current_version()) is not None:
            parts[p] = _state_shape(part, v)
    out = {
        "world": {"users": users, "pages": pages, "events": events},
        "shards": shards,
        "partitions": partitions,
        "processes": procs,
        "parts": parts,
        "merged": {
            **_state_shape(store, version),
            "snapshot_bytes": len(store.full_bytes(version)),
        },
    }
    log.info("shards %s", json.dumps(out))
    return out
