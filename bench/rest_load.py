"""REST load on one scorer that is scoring page views at the same time.

Run ``python -m bench.rest_load [--rounds 3] [--kafka-rate 1000] [--seconds 10]``; writes
``bench/results/rest_load.{json,md}``. Needs ``wrk`` (Debian's package) on the PATH.

Each round starts, in turn, a fresh ``streamrec scorer`` (the default engine, with a read
token and the bench's trained model; fresh topics, histories seeded) per configuration
of :data:`CONFIGS`: the recommendation requests in progress bounded at the default
(``STREAMREC_REST_MAX_IN_FLIGHT``) and unbounded (0: the overload middleware is not
installed). Beside it, ``streamrec produce`` (its own process) sends page views at a
fixed ``--kafka-rate`` for the scorer's whole life. Then, against that scorer, wrk (its
own process, :file:`rest_load.lua`: ``Authorization: Bearer``, a random user of the
world per request, ``k=10``):

- *idle*: no REST load, the Kafka rate alone;
- *concurrency sweep*: closed loop, :data:`CONNECTIONS` connections each asking again as
  soon as answered: 200s/s, 503s/s, p50/p99 of every answer. The run's *saturation* is
  its highest 200s/s there;
- *fixed rates*: 25, 50 and 75 % of that saturation, open loop as long as one of
  :data:`RATE_CONNECTIONS` connections is free (each wrk thread hands out send times
  ``i / rate``; latency is measured from the actual send);
- *hot path*: :data:`HOT_RATE`/s over :data:`HOT_CONNECTIONS` connections, the same for
  both configurations: the middleware's before/after figure (with p50 at one connection);
- *overload*: :data:`OVERLOAD` % of the saturation offered over
  :data:`OVERLOAD_CONNECTIONS` connections;

with the scorer's ``streamrec_events_scored_total`` read from ``/metrics`` before and
after each step: the page views it scored per second meanwhile (*Kafka events/s*).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from streams.services.processes import ChildProcess
from streams.settings import Secret, Settings

from .harness import Bench, child_env, run_standalone
from .latency import PacedScorer
from .report import RESULTS
from .rest_load_report import figures, report
from .world import World, make_world, train

log = logging.getLogger(__name__)

TOKEN = "rest-load-bench-token-0123456789"
LUA = Path(__file__).with_name("rest_load.lua")
DEFAULT_BOUND = Settings().rest_max_in_flight
#: name -> STREAMREC_REST_MAX_IN_FLIGHT of the scorer.
CONFIGS: dict[str, int] = {"unbounded": 0, "bounded": DEFAULT_BOUND}
#: Closed-loop connections of the concurrency sweep (wrk: at most one request each).
CONNECTIONS = (1, 4, 16, 32, 64)
#: Connections of the fixed-rate steps (no more than the default bound: none refused).
RATE_CONNECTIONS = DEFAULT_BOUND
#: Pause after each wrk run: the requests it left unanswered when it stopped are still
#: worked on by the scorer (aiohttp does not cancel them), and would count in the next.
SETTLE_S = 1.5
LOADS = (25, 50, 75)
#: The before/after figure of the middleware: the same moderate rate for both.
HOT_RATE = 250
HOT_CONNECTIONS = 8
#: Overload: this % of the run's saturation offered open loop over many connections.
OVERLOAD = 200
OVERLOAD_CONNECTIONS = 256
WRK_THREADS = 2


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


class Scored:
    """The scorer's page views scored so far, from its /metrics."""

    def __init__(self, settings: Settings) -> None:
        self.url = f"http://127.0.0.1:{settings.web_port}/metrics"

    def read(self) -> tuple[float, float]:
        request = urllib.request.Request(self.url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            text = resp.read().decode()
        return time.perf_counter(), _metric(text, "streamrec_events_scored_total")

    @staticmethod
    def rate(before: tuple[float, float], after: tuple[float, float]) -> float:
        return (after[1] - before[1]) / (after[0] - before[0])


def wrk(
    settings: Settings, users: Path, seconds: float, connections: int, rate: float = 0.0
) -> dict[str, Any]:
    """One wrk run against the scorer; its RESULT line, in ms and per second."""
    threads = min(WRK_THREADS, connections)
    env = {
        **os.environ,
        "RL_TOKEN": TOKEN,
        "RL_USERS": str(users),
        "RL_RATE": str(rate),
        "RL_THREADS": str(threads),
    }
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:.0f}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{settings.web_port}/",
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]}{done.stderr}")
    raw = json.loads(line[len("RESULT ") :])
    duration = raw["duration_us"] / 1e6
    ok = raw["statuses"].get("200", 0)
    return {
        "connections": connections,
        "offered_per_s": rate or None,
        "answered_per_s": round(raw["requests"] / duration, 1),
        "ok_per_s": round(ok / duration, 1),
        "refused_per_s": round(raw["statuses"].get("503", 0) / duration, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "statuses": raw["statuses"],
        "socket_errors": sum(
            raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
    }


def step(scored: Scored, work: Any) -> dict[str, Any]:
    """``work()``'s figures with the Kafka events/s scored meanwhile."""
    before = scored.read()
    out = work()
    time.sleep(SETTLE_S)
    out["kafka_events_per_s"] = round(Scored.rate(before, scored.read()), 1)
    return out


def write_inputs(world: World, tmp: Path, events: int) -> tuple[Path, Path]:
    """The page views ``streamrec produce`` sends (the world's scoring rows, repeated) and
    the users wrk asks for (those rows' users: they have histories)."""
    views = tmp / "rest-load-views.csv"
    rows = [world.score[i % len(world.score)] for i in range(events)]
    views.write_text(
        "user_id,page_id,ts_ms,session_id\n"
        + "".join(f"{u},{p},{ts},{s}\n" for u, p, ts, s in rows)
    )
    users = tmp / "rest-load-users.txt"
    users.write_text("".join(f"{u}\n" for u in sorted({r[0] for r in world.score})))
    return views, users


def one_scorer(
    bench: Bench,
    world: World,
    inputs: tuple[Path, Path],
    name: str,
    kafka_rate: float,
    seconds: float,
    r: int,
) -> dict[str, Any]:
    """A scorer of configuration ``name`` (with its page views) under the steps."""
    views, users = inputs
    s = bench.run_settings(
        f"rest-{name}",
        scorer_engine="kafka",
        api_tokens=Secret(f"bench:read:{TOKEN}"),
        rest_max_in_flight=CONFIGS[name],
    )
    scorer = PacedScorer(bench, world, s, f"rest-load-{name}-{r}")
    producer: ChildProcess | None = None
    try:
        scorer.wait()
        scorer.tail.close()
        producer = ChildProcess.streamrec(
            ["produce", "--input", str(views), "--rate", str(kafka_rate)],
            child_env(s),
            bench.logs / f"rest-load-produce-{name}-{r}.log",
        )
        scored = Scored(s)
        time.sleep(3.0)  # the producer connects and the scorer takes the pace

        def checked(figures: dict[str, Any], what: str) -> dict[str, Any]:
            log.info("rest-load %s r=%d %s %s", name, r, what, figures)
            assert producer is not None
            producer.check()
            scorer.proc.check()
            return figures

        def idle() -> dict[str, Any]:
            time.sleep(seconds / 2)
            return {}

        out: dict[str, Any] = {"max_in_flight": CONFIGS[name], "idle": step(scored, idle)}
        out["sweep"] = [
            checked(step(scored, lambda c=c: wrk(s, users, seconds * 0.6, c)), f"c={c}")
            for c in CONNECTIONS
        ]
        saturation = max(x["ok_per_s"] for x in out["sweep"])
        out["saturation_per_s"] = saturation
        out["rates"] = {}
        for load in LOADS:
            rate = round(saturation * load / 100, -1)
            out["rates"][str(load)] = checked(
                step(scored, lambda rate=rate: wrk(s, users, seconds, RATE_CONNECTIONS, rate)),
                f"{load}%",
            )
        out["hot_path"] = checked(
            step(scored, lambda: wrk(s, users, seconds, HOT_CONNECTIONS, HOT_RATE)), "hot path"
        )
        rate = round(saturation * OVERLOAD / 100, -1)
        out["overload"] = checked(
            step(scored, lambda: wrk(s, users, seconds, OVERLOAD_CONNECTIONS, rate)), "overload"
        )
        out["scorer_peak_rss_mb"] = scorer.proc.peak_rss_mb()
        return out
    finally:
        if producer is not None:
            producer.stop()
        scorer.proc.stop()


def run(bench: Bench, rounds: int, kafka_rate: float, seconds: float) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    world = train(make_world(20_000, 2_000, 100_000, 5_000), raw_runs=1, raw_events=20_000)
    # Enough page views for a scorer's whole life at the Kafka rate.
    steps_s = len(CONNECTIONS) * seconds * 0.6 + (len(LOADS) + 2) * seconds
    life_s = 10 + seconds / 2 + steps_s + (len(CONNECTIONS) + len(LOADS) + 3) * SETTLE_S + 30
    inputs = write_inputs(world, bench.tmp, int(kafka_rate * life_s * 1.5))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    for r in range(rounds):
        order = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
        for name in order:
            out = one_scorer(bench, world, inputs, name, kafka_rate, seconds, r)
            runs[name].append(out)
            print(f"round {r} {name}: saturation {out['saturation_per_s']}/s")
    return {
        "kafka_rate": kafka_rate,
        "seconds": seconds,
        "rounds": rounds,
        "configs": CONFIGS,
        "connections": list(CONNECTIONS),
        "rate_connections": RATE_CONNECTIONS,
        "hot_path": {"rate": HOT_RATE, "connections": HOT_CONNECTIONS},
        "overload": {"percent_of_saturation": OVERLOAD, "connections": OVERLOAD_CONNECTIONS},
        "loads": list(LOADS),
        "runs": runs,
        "figures": figures(runs, CONNECTIONS, LOADS),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kafka-rate", type=float, default=1_000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=RESULTS / "rest_load.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run_standalone(
        args.output,
        lambda bench: run(bench, args.rounds, args.kafka_rate, args.seconds),
        report,
    )


if __name__ == "__main__":
    main()
