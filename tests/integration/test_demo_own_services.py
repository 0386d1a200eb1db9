"""The demo beside a stack of `streamrec up` on other ports: it runs on services of its
own and leaves the stack alone; `status` probes the port the stack was started on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from streams.services.embedded import free_port, port_in_use


def streamrec(
    args: list[str], env: dict[str, str], timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def test_the_demo_runs_beside_a_stack_on_other_ports_and_status_finds_it(tmp_path: Path) -> None:
    base = {
        k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}
    }
    base = {k: v for k, v in base.items() if not k.startswith("STREAMREC_")}
    stack_kafka, stack_redis = free_port(), free_port()
    stack_env = {
        **base,
        "STREAMREC_STATE_DIR": str(tmp_path),
        "STREAMREC_KAFKA_PORT": str(stack_kafka),
        "STREAMREC_REDIS_PORT": str(stack_redis),
    }
    # Another shell, the same state dir: Kafka's port left at a value nothing listens on
    # (as the default is beside `STREAMREC_KAFKA_PORT=29092 streamrec up`), Redis' port the
    # stack's own (in use).
    elsewhere = free_port()
    demo_env = {
        **stack_env,
        "STREAMREC_KAFKA_PORT": str(elsewhere),
        "STREAMREC_WEB_PORT": str(free_port()),
    }
    up = streamrec(["up"], stack_env)
    assert up.returncode == 0, up.stdout + up.stderr
    recorded = (tmp_path / "services.json").read_text()
    pids = [entry["pid"] for entry in json.loads(recorded).values()]
    try:
        # `status` with these other settings probes where the stack listens, and says so.
        status = streamrec(["status", "--json"], demo_env)
        assert status.returncode == 0, status.stdout + status.stderr
        services = json.loads(status.stdout)
        assert services["kafka"]["address"] == f"127.0.0.1:{stack_kafka}"
        assert services["kafka"]["reachable"] is True
        assert f"STREAMREC_KAFKA_PORT is {elsewhere}" in services["kafka"]["note"]
        assert services["redis"]["reachable"] is True and services["redis"]["note"] is None
        table = streamrec(["status"], demo_env)
        assert table.returncode == 0 and "NOT reachable" not in table.stdout, table.stdout
        assert f"127.0.0.1:{stack_kafka}" in table.stdout

        demo = streamrec(
            ["demo", "--duration", "4s", "--rate", "50", "--users", "40", "--pages", "30"],
            demo_env,
            timeout=240,
        )
        assert demo.returncode == 0, demo.stderr[-3000:]
        started = re.search(
            r"started embedded kafka at 127\.0\.0\.1:(\d+), redis at .*:(\d+)/0", demo.stderr
        )
        assert started is not None, demo.stderr[-3000:]
        demo_kafka, demo_redis = int(started.group(1)), int(started.group(2))
        assert demo_kafka == elsewhere  # free: the configured port
        assert demo_redis not in (stack_redis, stack_kafka)  # the stack's: another one
        assert "stopped embedded kafka, redis" in demo.stderr
        assert not port_in_use(demo_kafka) and not port_in_use(demo_redis)

        # The stack was neither used nor touched.
        assert (tmp_path / "services.json").read_text() == recorded
        assert all(alive(pid) for pid in pids)
        again = json.loads(streamrec(["status", "--json"], stack_env).stdout)
        assert again["kafka"]["reachable"] and again["redis"]["reachable"]
        assert again["kafka"]["note"] is None
    finally:
        down = streamrec(["down"], stack_env)
    assert down.returncode == 0 and "stopped: kafka, redis" in down.stdout, down.stdout
