"""A forgotten `streamrec up` (or a wrong address) fails in seconds with one clear line.

librdkafka retries an unreachable broker and logs every attempt: `produce`, `trainer` and
`scorer` used to take ~30 s and `replay` ~10 s, printing hundreds of ``FAIL ... Connection
refused`` lines before their error.
"""

from __future__ import annotations

import os
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.services.embedded import free_port
from streams.settings import Settings
from tests.support.fixtures import TEST_SNAPSHOT_KEY

#: The promise: exit 2 within this many seconds, with at most this many lines on stderr.
BOUND_S = 5.0
MAX_LINES = 5

COMMANDS = {
    "produce": ["produce", "--input", "{views}"],
    "trainer": ["trainer"],
    "scorer": ["scorer"],
    "replay": ["replay", "--publish", "candidate"],
}


def run(args: list[str], env: dict[str, str]) -> tuple[int, float, list[str]]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, time.monotonic() - started, done.stderr.splitlines()


@pytest.fixture(scope="module")
def slack_s() -> float:
    """How much longer than on an idle machine this one takes to start the CLI at all.

    The bound is about waiting for services; a loaded machine only adds its start-up.
    """
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "streams.cli", "--help"], capture_output=True)
    return max(0.0, time.monotonic() - started - 1.0)


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"} and not k.startswith("STREAMREC_")
    }
    env.update(
        STREAMREC_SNAPSHOT_KEY=TEST_SNAPSHOT_KEY,
        STREAMREC_STATE_DIR=str(tmp_path / "state"),
        STREAMREC_WEB_PORT=str(free_port()),
    )
    views = tmp_path / "views.csv"
    views.write_text("user_id,page_id,ts_ms\nu1,p1,1700000000000\n")
    env["VIEWS"] = str(views)
    return env


def args_for(name: str, env: dict[str, str]) -> list[str]:
    return [a.replace("{views}", env["VIEWS"]) for a in COMMANDS[name]]


def assert_fast_and_clear(
    code: int, elapsed: float, lines: list[str], slack_s: float, *needles: str
) -> None:
    text = "\n".join(lines)
    assert code == 2, text
    assert elapsed <= BOUND_S + slack_s, f"{elapsed:.1f} s (slack {slack_s:.1f} s)\n{text}"
    assert len(lines) <= MAX_LINES, text
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, text
    for needle in needles:
        assert needle in errors[0], text
    assert "Traceback" not in text


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_closed_kafka_port_exits_2_in_seconds_with_one_clear_line(
    name: str, base_env: dict[str, str], slack_s: float
) -> None:
    port = free_port()  # nothing listens there
    env = {
        **base_env,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    code, elapsed, lines = run(args_for(name, env), env)
    print(f"{name}: exit {code} after {elapsed:.2f} s, {len(lines)} stderr lines")
    assert_fast_and_clear(
        code,
        elapsed,
        lines,
        slack_s,
        f"Kafka is not reachable at 127.0.0.1:{port}",
        "refused",
        "KAFKA_BOOTSTRAP_SERVERS",
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_embedded_services_not_started_say_to_run_streamrec_up(
    name: str, base_env: dict[str, str], slack_s: float
) -> None:
    env = {
        **base_env,
        "STREAMREC_KAFKA_PORT": str(free_port()),
        "STREAMREC_REDIS_PORT": str(free_port()),
    }
    code, elapsed, lines = run(args_for(name, env), env)
    assert_fast_and_clear(code, elapsed, lines, slack_s, "Kafka", "`streamrec up`")


@pytest.mark.parametrize("name", ["trainer", "scorer", "replay"])
def test_closed_redis_port_exits_2_in_seconds_when_the_command_needs_redis(
    name: str, base_env: dict[str, str], settings: Settings, slack_s: float
) -> None:
    port = free_port()
    env = {
        **base_env,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "STREAMREC_TOPIC_PAGE_VIEWS": settings.topic_page_views,
    }
    code, elapsed, lines = run(args_for(name, env), env)
    assert_fast_and_clear(
        code, elapsed, lines, slack_s, f"Redis is not reachable at redis://127.0.0.1:{port}/0"
    )
    assert "Kafka" not in "\n".join(lines)


class _HttpAnswer(socketserver.BaseRequestHandler):
    """Answers whatever it is sent as an HTTP server does, and keeps the connection."""

    def handle(self) -> None:
        while self.request.recv(4096):
            self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def http_port() -> Iterator[int]:
    """A port on loopback that answers, but in HTTP, not in the Redis protocol."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HttpAnswer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "args",
    [
        ["models", "list"],
        ["models", "promote", "3"],
        ["models", "rollback"],
        ["experiment", "status"],
        ["batch-score", "--users", "{users}", "--output", "{out}"],
    ],
)
def test_a_peer_that_is_not_redis_is_one_line_for_every_command(
    args: list[str],
    base_env: dict[str, str],
    settings: Settings,
    http_port: int,
    tmp_path: Path,
) -> None:
    users = tmp_path / "users.txt"
    users.write_text("u1\n")
    env = {
        **base_env,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "REDIS_URL": f"redis://127.0.0.1:{http_port}/0",
    }
    argv = [a.format(users=users, out=tmp_path / "out.jsonl") for a in args]
    code, _, lines = run(argv, env)
    assert code == 2, lines
    assert "Traceback" not in "\n".join(lines)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, lines
    assert "does not speak the Redis protocol" in errors[0], lines
