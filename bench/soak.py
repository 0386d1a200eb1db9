"""A long run ("soak") of the real pipeline on embedded services: ``python -m bench.soak``.

Starts its own broker and Redis (``bench_services``), then a trainer and a scorer exactly as
a user would (``python -m streams.cli trainer|scorer``, logs in ``<results>/logs/``),
generates a world with ``streamrec generate`` and runs ``streamrec produce --rate R`` for
``--minutes``. Every ``--sample-s`` it records the RSS and CPU seconds of the trainer,
scorer, broker and Redis (``/proc``), both groups' consumer lag (committed vs high
watermark, read with one plain consumer per group: ``AdminClient.list_consumer_group_offsets``
can abort the process through a librdkafka bug when the broker stalls), the scorer's
``/readyz`` and ``/metrics`` and the newest trainer snapshot. At the end it stops
``produce`` (SIGINT), waits for the pipeline to drain, stops the trainer and scorer
(SIGTERM), reads ``page-views`` and ``recommendations`` whole and checks: every page view
answered once, events learned == produced, lag bounded, RSS flat, no error lines, clean
exits. Writes ``soak.json``, ``soak.md`` and ``soak.png`` to ``--results-dir``; exits 0
when every judged check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.io.codec import page_view_codec, recommendation_codec
from streams.io.consumer_lag import partition_lag
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess
from streams.settings import Settings
from streams.wiring import snapshot_store

from .harness import Bench, TopicTail, bench_services, child_env, machine
from .report import RESULTS, write_pair
from .soak_report import (
    GROUPS,
    Sample,
    cpu_seconds,
    error_lines,
    evaluate,
    parse_metrics,
    plot,
    render_markdown,
    vm_rss_mb,
)


# -- the pipeline ----------------------------------------------------------------------------
def _proc(pid: int | None, name: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_text() if pid else None
    except OSError:
        return None


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:  # /readyz answers 503 while starting
        return str(exc.read().decode())
    except OSError:
        return None


class Sampler:
    """One sample every call: processes, lag, the scorer's endpoints, the newest snapshot."""

    def __init__(self, settings: Settings, pids: Mapping[str, int | None], t0: float) -> None:
        self.settings, self.pids, self.t0 = settings, dict(pids), t0
        self.topic = settings.topic_page_views
        groups = {"scorer": settings.scorer_group, "trainer": settings.trainer_group}
        self.consumers = {r: Consumer(settings.consumer_config(g)) for r, g in groups.items()}
        meta = self.consumers["scorer"].list_topics(self.topic, timeout=10).topics[self.topic]
        self.parts = [TopicPartition(self.topic, p) for p in sorted(meta.partitions)]
        self.store = snapshot_store(settings)
        self.meta: Any = None
        self.ticks = os.sysconf("SC_CLK_TCK")

    def committed(self, role: str) -> dict[int, int | None]:
        done = self.consumers[role].committed(self.parts, timeout=5)
        return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in done}

    def snapshot(self) -> Any:
        """The newest trainer snapshot's metadata (the last one read if it cannot be)."""
        try:
            version = self.store.newest_version_hint("trainer")
            if version is not None and (self.meta is None or self.meta.version != version):
                self.meta = self.store.read_meta(version)
        except Exception as exc:  # a pruned version or a slow Redis: keep the last one
            print(f"soak: snapshot read failed: {exc}", file=sys.stderr)
        return self.meta

    def sample(self, phase: str) -> Sample:
        out: Sample = {"t": round(time.time() - self.t0, 1), "phase": phase}
        status = {p: _proc(pid, "status") for p, pid in self.pids.items()}
        stat = {p: _proc(pid, "stat") for p, pid in self.pids.items()}
        out["rss_mb"] = {p: vm_rss_mb(t) if t else None for p, t in status.items()}
        out["cpu_s"] = {p: cpu_seconds(t, self.ticks) if t else None for p, t in stat.items()}
        out["lag"], out["produced"] = {g: None for g in GROUPS}, None
        try:
            marks = {
                tp.partition: self.consumers["scorer"].get_watermark_offsets(tp, 5, cached=False)
                for tp in self.parts
            }
            out["produced"] = sum(high for _, high in marks.values())
            for g in GROUPS:
                done = self.committed(g)
                out["lag"][g] = sum(
                    partition_lag(done.get(p), lo, hi) for p, (lo, hi) in marks.items()
                )
        except KafkaException as exc:
            out["lag_error"] = str(exc)
        base = f"http://127.0.0.1:{self.settings.web_port}"
        ready = _get(f"{base}/readyz")
        try:
            out["model_version"] = json.loads(ready or "{}").get("model_version")
        except ValueError:
            out["model_version"] = None
        out.update(parse_metrics(_get(f"{base}/metrics") or ""))
        meta = self.snapshot()
        out["snapshot_version"] = meta.version if meta else None
        out["learned"] = meta.events_seen if meta else None
        return out

    def close(self) -> None:
        for consumer in self.consumers.values():
            consumer.close()


def read_topic(settings: Settings, topic: str, each: Callable[[bytes], None]) -> dict[int, int]:
    """Call ``each`` on every record of ``topic`` (until 5 s without one); the end offsets."""
    tail = TopicTail(settings, topic, fetch_wait_ms=100)
    ends: dict[int, int] = {}
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 5.0:
        messages = tail.poll(0.5, 10_000)
        if messages:
            quiet_since = time.monotonic()
        for m in messages:
            each(m.value() or b"")
            p, o = m.partition() or 0, m.offset() or 0
            ends[p] = max(ends.get(p, 0), o + 1)
    tail.close()
    return ends


def service_pids(state_dir: Path) -> dict[str, int | None]:
    """The embedded broker's and Redis' pids, from the state file ``bench_services`` wrote."""
    path = state_dir / "services.json"  # absent with external services
    state = json.loads(path.read_text()) if path.exists() else {}
    return {n: state.get(k, {}).get("pid") for n, k in (("broker", "kafka"), ("redis", "redis"))}


def wait_ready(processes: Sequence[tuple[ChildProcess, str]], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(line in p.output() for p, line in processes):
        for p, _ in processes:
            p.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no ready lines within {timeout:.0f} s")
        time.sleep(0.5)


class Soak:
    """One run: the children, the samples, and what the end showed (``final``)."""

    def __init__(self, settings: Settings, args: argparse.Namespace, services: Path) -> None:
        self.settings, self.args = settings, args
        self.env = child_env(settings)
        self.logs = {
            n: args.results_dir / "logs" / f"soak-{n}.log"
            for n in ("trainer", "scorer", "generate", "produce")
        }
        self.services = service_pids(services)
        self.duration = args.minutes * 60
        self.events = int(args.rate * self.duration * 1.05) + 1_000
        self.children: dict[str, ChildProcess] = {}
        self.samples: list[Sample] = []
        self.final: dict[str, Any] = {"died": None, "exit_codes": {}, "drained": False}
        self.stopped_at = 0.0

    def start(self, csv: Path) -> None:
        """Trainer and scorer up and ready, then the world generated into ``csv``."""
        ensure_topics(self.settings)
        for path in self.logs.values():
            path.unlink(missing_ok=True)  # ChildProcess appends: one log per run
        shard = ["--shard", self.args.trainer_shard] if self.args.trainer_shard else []
        self.children["trainer"] = ChildProcess.streamrec(
            ["trainer", *shard], self.env, self.logs["trainer"]
        )
        self.children["scorer"] = ChildProcess.streamrec(["scorer"], self.env, self.logs["scorer"])
        trainer_ready = "trainer shard ready" if shard else "trainer ready"
        wait_ready(
            [(self.children["trainer"], trainer_ready), (self.children["scorer"], "scorer ready")]
        )
        a = self.args
        argv = [sys.executable, "-m", "streams.cli", "generate", "--users", str(a.users)]
        argv += ["--pages", str(a.pages), "--events", str(self.events), "--output", str(csv)]
        with self.logs["generate"].open("wb") as out:
            subprocess.run(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, check=True)

    def produce(self, csv: Path) -> Sampler:
        """``streamrec produce`` for the duration (SIGINT then), sampling as it runs."""
        argv = ["produce", "--input", str(csv), "--rate", f"{self.args.rate:g}"]
        produce = ChildProcess.streamrec(argv, self.env, self.logs["produce"])
        self.children["produce"] = produce
        t0 = time.time()
        pids = {n: self.children[n].pid for n in ("trainer", "scorer")} | self.services
        sampler = Sampler(self.settings, pids, t0)
        tick = 0
        while time.time() - t0 < self.duration:
            self.samples.append(sampler.sample("run"))
            dead = [self.children[n] for n in ("trainer", "scorer") if not self.children[n].alive()]
            if dead:
                t = self.samples[-1]["t"]
                self.final["died"] = f"{dead[0].name} exited with {dead[0].returncode} at {t} s"
                break
            tick += 1
            due = min(t0 + tick * self.args.sample_s, t0 + self.duration)
            time.sleep(max(0.0, due - time.time()))
        self.final["duration_s"] = round(time.time() - t0, 1)
        self.final["exit_codes"]["produce"] = produce.stop(signal.SIGINT, timeout=30)
        self.stopped_at = time.monotonic()
        return sampler

    def drain(self, sampler: Sampler, ends: Mapping[int, int]) -> None:
        """Wait (from when produce stopped) until the scorer committed and the trainer
        snapshotted the topic's end; then SIGTERM both and read the final snapshot."""
        started, topic = self.stopped_at, self.settings.topic_page_views
        while self.final["died"] is None and time.monotonic() - started < self.args.drain_s:
            self.samples.append(sampler.sample("drain"))
            done, meta = sampler.committed("scorer"), sampler.meta
            learned = meta.offsets.get(topic, {}) if meta else {}
            if all((done.get(p) or 0) >= e and learned.get(p, 0) >= e for p, e in ends.items()):
                self.final["drained"] = True
                break
            time.sleep(min(self.args.sample_s, 2.0))
        self.final["drain_s"] = round(time.monotonic() - started, 1)
        for name in ("trainer", "scorer"):
            self.final["exit_codes"][name] = self.children[name].stop()
        self.samples.append(sampler.sample("stopped"))
        sampler.meta = None  # the trainer's final snapshot, published as it stopped
        meta = sampler.snapshot()
        learned = meta.offsets.get(topic, {}) if meta else {}
        self.final["learned_offsets"] = sum(learned.values())
        self.final["events_seen"] = meta.events_seen if meta else 0
        self.final["final_version"] = meta.version if meta else None

    def answers(self, produced: set[str]) -> None:
        """Read ``recommendations`` and the DLQ whole: answered, duplicates, unknown ids."""
        answered: set[str] = set()
        counts = {"duplicates": 0, "unexpected": 0, "dead_letters": 0}
        codec = recommendation_codec(self.settings)

        def answer(value: bytes) -> None:
            event_id = codec.decode(value)["event_id"]
            counts["duplicates"] += event_id in answered
            counts["unexpected"] += event_id not in produced
            answered.add(event_id)

        def dead_letter(_: bytes) -> None:
            counts["dead_letters"] += 1

        read_topic(self.settings, self.settings.topic_recommendations, answer)
        read_topic(self.settings, self.settings.topic_dlq, dead_letter)
        self.final.update(counts, produced=len(produced), answered=len(answered & produced))

    def run(self, tmp: Path) -> dict[str, Any]:
        csv = tmp / "views.csv"
        try:
            self.start(csv)
            sampler = self.produce(csv)
            produced: set[str] = set()
            codec = page_view_codec(self.settings)
            ends = read_topic(
                self.settings,
                self.settings.topic_page_views,
                lambda v: produced.add(codec.decode(v)["event_id"]),
            )
            self.final["end_offsets"] = sum(ends.values())
            self.drain(sampler, ends)
            sampler.close()
        finally:
            for child in self.children.values():
                child.stop()
        self.answers(produced)
        logged = {
            n: error_lines(self.logs[n].read_text(errors="replace")) for n in ("trainer", "scorer")
        }
        self.final["error_lines"] = {n: len(v) for n, v in logged.items()}
        self.final["error_examples"] = {n: v[:5] for n, v in logged.items()}
        a = self.args
        config = {
            k: getattr(a, k)
            for k in ("minutes", "rate", "users", "pages", "sample_s", "trainer_shard")
        }
        config.update(events=self.events, max_lag_s=a.max_lag_s, max_rss_slope=a.max_rss_slope)
        return {"config": config, "samples": self.samples, "final": self.final}


def _env(name: str, default: Any) -> Any:
    raw = os.environ.get(name)
    return type(default)(raw) if raw else default


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").splitlines()[0]
    )
    for flag, var, default, text in (
        ("--minutes", "STREAMREC_SOAK_MINUTES", 60.0, "how long produce runs"),
        ("--rate", "STREAMREC_SOAK_RATE", 800.0, "page views per second"),
        ("--users", "STREAMREC_SOAK_USERS", 50_000, "users of the generated world"),
        ("--pages", "STREAMREC_SOAK_PAGES", 5_000, "pages of the generated world"),
        ("--sample-s", "STREAMREC_SOAK_SAMPLE_S", 10.0, "seconds between samples"),
        ("--drain-s", "STREAMREC_SOAK_DRAIN_S", 120.0, "longest wait for the drain"),
        ("--max-lag-s", "STREAMREC_SOAK_MAX_LAG_S", 30.0, "lag bound, seconds of traffic"),
        ("--max-rss-slope", "STREAMREC_SOAK_MAX_RSS_SLOPE", 30.0, "RSS slope limit, MB/h"),
    ):
        parser.add_argument(
            flag, type=type(default), default=_env(var, default), help=f"{text} (${var})"
        )
    parser.add_argument(
        "--trainer-shard",
        default=os.environ.get("STREAMREC_SOAK_TRAINER_SHARD", ""),
        metavar="SPEC",
        help="run the trainer as `trainer --shard SPEC` (e.g. auto: one process learning "
        "every partition as a shard, merging them), not a plain trainer "
        "($STREAMREC_SOAK_TRAINER_SHARD)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path(os.environ.get("STREAMREC_BENCH_RESULTS") or RESULTS),
        help="where soak.json, soak.md, soak.png and logs/ go ($STREAMREC_BENCH_RESULTS)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = machine()
    with (
        tempfile.TemporaryDirectory(prefix="streamrec-soak-") as tmp,
        bench_services(Path(tmp) / "services") as (base, origin),
    ):
        bench = Bench(base, origin, False, Path(tmp), args.results_dir / "logs")
        result: dict[str, Any] = {"services": origin, "machine": started}
        soak = Soak(bench.run_settings("soak"), args, base.state_dir)
        result.update(soak.run(Path(tmp)))
    limits = {"rate": args.rate, "max_lag_s": args.max_lag_s, "max_rss_slope": args.max_rss_slope}
    result["summary"] = evaluate(result["samples"], result["final"], limits)
    markdown = render_markdown(result)
    write_pair(args.results_dir / "soak.json", result, markdown)
    if not plot(result, args.results_dir / "soak.png"):
        print("matplotlib not installed: no soak.png", file=sys.stderr)
    print(markdown)
    return 0 if result["summary"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
