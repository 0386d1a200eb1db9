"""`streamrec up | status | down` as a user runs them: subprocesses, real servers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from streams.services.embedded import free_port
from streams.settings import Settings


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().split()
    except OSError:
        return False
    return stat[2] != "Z"


def test_up_status_down(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}}
    env.update(
        STREAMREC_STATE_DIR=str(tmp_path),
        STREAMREC_KAFKA_PORT=str(free_port()),
        STREAMREC_REDIS_PORT=str(free_port()),
    )
    try:
        first = run(["up"], env)
        assert first.returncode == 0, first.stderr
        # no tokens set: it offers one, in the format the scorer reads
        offered = first.stdout.split("export STREAMREC_API_TOKENS=", 1)[1].split()[0]
        assert Settings.from_env({"STREAMREC_API_TOKENS": offered}).api_tokens
        assert f"Bearer {offered.split(':')[2]}" in first.stdout
        again = run(["up"], env)
        assert again.returncode == 0 and "nothing started" in again.stdout

        status = run(["status", "--json"], env)
        assert status.returncode == 0, status.stdout + status.stderr
        services = json.loads(status.stdout)
        pids = []
        for name in ("kafka", "redis"):
            assert services[name]["reachable"] is True
            assert services[name]["started_by"].startswith("streamrec (pid ")
            pids.append(int(services[name]["started_by"].split("pid ")[1].rstrip(")")))
        assert all(alive(pid) for pid in pids)
    finally:
        down = run(["down"], env)
    assert down.returncode == 0 and "stopped: kafka, redis" in down.stdout
    assert not any(alive(pid) for pid in pids)
    status = run(["status", "--json"], env)
    assert status.returncode == 1
    assert not any(s["reachable"] for s in json.loads(status.stdout).values())
    assert "nothing to stop" in run(["down"], env).stdout


def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}
        }
        env.update(
            STREAMREC_STATE_DIR=str(tmp_path),
            STREAMREC_KAFKA_PORT=str(port),
            STREAMREC_REDIS_PORT=str(free_port()),
        )
        result = run(["up"], env)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    assert run(["down"], env).returncode == 0
