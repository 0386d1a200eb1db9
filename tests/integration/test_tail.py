"""``streamrec tail`` prints the recommendations topic as JSON lines, as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from streams.io.codec import RECOMMENDATION, AvroCodec
from streams.io.producer import ReliableProducer
from streams.io.topics import ensure_topics
from streams.settings import Settings


def recommendation(n: int, user: str) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {
        "event_id": f"e{n}-{now}",
        "user_id": user,
        "items": [{"page_id": f"p{n}-{i}", "score": 1.0 / (i + 1)} for i in range(3)],
        "model_name": "default",
        "model_version": 7,
        "page_view_ts": now - 5,
        "produced_at": now,
        "arm": "",
    }


def send(settings: Settings, records: list[dict[str, Any]]) -> None:
    """Keyed by user id, as the scorer writes them (one flush: a few batches)."""
    codec = AvroCodec.bundled(RECOMMENDATION)
    producer = ReliableProducer(settings)
    for record in records:
        producer.produce(
            settings.topic_recommendations, codec.encode(record), key=record["user_id"]
        )
    report = producer.flush(30.0)
    assert report.delivered == len(records), report


def tail(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "tail", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def running_tail(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[str]]:
    """A ``streamrec tail`` that has said it reads (its ``tailing ...`` line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "tail", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("tailing "), line + proc.stderr.read()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_from_beginning_prints_every_record_as_a_json_line(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    ensure_topics(settings, [settings.topic_recommendations])
    records = [recommendation(n, f"u{n % 4}") for n in range(40)]
    send(settings, records)

    started = time.monotonic()
    done = tail(settings_env, "--from-beginning", "--max", "40", "--timeout", "30")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15, done.stderr  # no group join to wait for
    printed = lines(done.stdout)
    by_id = {r["event_id"]: r for r in records}
    assert len(printed) == 40
    assert {r["event_id"] for r in printed} == set(by_id)
    assert all(r == by_id[r["event_id"]] for r in printed)
    assert "stopped after --max 40: 40 records printed" in done.stderr


def test_user_prints_only_that_users_records(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    ensure_topics(settings, [settings.topic_recommendations])
    records = [recommendation(n, f"u{n % 5}") for n in range(50)]
    send(settings, records)
    wanted = {r["event_id"] for r in records if r["user_id"] == "u3"}

    done = tail(settings_env, "--from-beginning", "--user", "u3", "--timeout", "4")
    assert done.returncode == 0, done.stderr  # --timeout without --max: a normal end
    printed = lines(done.stdout)
    assert {r["user_id"] for r in printed} == {"u3"}
    assert sorted(r["event_id"] for r in printed) == sorted(wanted)
    assert "stopped after --timeout 4 s: 10 records printed, 50 read" in done.stderr


def test_from_now_prints_only_records_written_after_it_started(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    ensure_topics(settings, [settings.topic_recommendations])
    # Written in one go: the embedded broker reports the end of a partition as the last
    # batch's base offset + 1, so a reader starting there would see most of that batch.
    send(settings, [recommendation(n, f"u{n % 3}") for n in range(300)])
    time.sleep(0.01)  # the records above are stamped strictly before tail starts

    with running_tail(settings_env, "--max", "12", "--timeout", "30") as proc:
        new = [recommendation(1000 + n, f"u{n % 3}") for n in range(12)]
        send(settings, new)
        out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err
    printed = lines(out)
    assert sorted(r["event_id"] for r in printed) == sorted(r["event_id"] for r in new)


def test_a_bound_that_is_not_reached_exits_1(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    ensure_topics(settings, [settings.topic_recommendations])
    send(settings, [recommendation(n, "u1") for n in range(3)])
    done = tail(settings_env, "--from-beginning", "--max", "5", "--timeout", "3")
    assert done.returncode == 1, done.stderr
    assert len(lines(done.stdout)) == 3
    assert "stopped after --timeout 3 s: 3 records printed" in done.stderr


def test_ctrl_c_prints_a_stop_line_and_exits_130(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    with running_tail(settings_env) as proc:
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert out == ""
    assert "interrupted by SIGINT: 0 records printed" in err
    assert "Traceback" not in err
