"""A bench stopped by SIGTERM or SIGINT stops the embedded broker and Redis it started,
and one killed outright takes them with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streams.services.processes import wait_for

REPO = Path(__file__).resolve().parents[2]

#: A bench as small as one gets: the harness's services, then waiting to be stopped.
BENCH = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bench.harness import bench_services

    with bench_services(Path(sys.argv[1])) as (settings, origin):
        print(origin, flush=True)
        time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def start_bench(state_dir: Path) -> tuple[subprocess.Popen[str], list[int]]:
    env = {k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}}
    bench = subprocess.Popen(
        [sys.executable, "-c", BENCH, str(state_dir)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert bench.stdout is not None
    assert bench.stdout.readline().strip() == "embedded", bench.stderr and bench.stderr.read()
    recorded = json.loads((state_dir / "services.json").read_text())
    pids = [recorded[name]["pid"] for name in ("kafka", "redis")]
    assert all(alive(pid) for pid in pids)
    return bench, pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_bench_stops_its_broker_and_redis(tmp_path: Path, sig: signal.Signals) -> None:
    bench, pids = start_bench(tmp_path)
    try:
        started = time.monotonic()
        bench.send_signal(sig)
        code = bench.wait(20)
        wait_for(lambda: not any(alive(pid) for pid in pids), 5, "the services to stop")
        assert time.monotonic() - started < 15
    finally:
        bench.kill()
        bench.wait()
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGINT), (
        bench.stderr and bench.stderr.read()
    )
    assert not (tmp_path / "services.json").exists()  # stopped by `down`, not by chance


def test_a_killed_bench_takes_its_broker_and_redis_with_it(tmp_path: Path) -> None:
    bench, pids = start_bench(tmp_path)
    bench.kill()  # SIGKILL: no cleanup of its own runs
    bench.wait()
    wait_for(lambda: not any(alive(pid) for pid in pids), 5, "the services to die with it")
