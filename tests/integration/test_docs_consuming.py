"""docs/consuming.md's consumer runs as written and gets its first record fast.

The block is taken out of the page itself, so the example and what the page says about
its settings cannot drift apart: a consumer that subscribes with librdkafka's defaults
would wait 23 s for a group join on the embedded broker.
"""

from __future__ import annotations

import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from streams.io.codec import RECOMMENDATION, AvroCodec
from streams.io.producer import ReliableProducer
from streams.io.topics import ensure_topics
from streams.settings import Settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "consuming.md"
RECORDS = 3000


def python_block(text: str) -> str:
    [block] = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return block


def fill(settings: Settings) -> set[str]:
    """RECORDS recommendations in batches of 100, as a scorer writes them; their ids."""
    ensure_topics(settings, [settings.topic_recommendations])
    codec = AvroCodec.bundled(RECOMMENDATION)
    producer = ReliableProducer(settings)
    now = int(time.time() * 1000)
    ids = set()
    for n in range(RECORDS):
        event_id, user = f"e{n}", f"u{n % 97}"
        record: dict[str, Any] = {
            "event_id": event_id,
            "user_id": user,
            "items": [{"page_id": f"p{(n + i) % 50}", "score": 1.0 / (i + 1)} for i in range(10)],
            "model_name": "default",
            "model_version": 3,
            "page_view_ts": now,
            "produced_at": now,
            "arm": "",
        }
        producer.produce(settings.topic_recommendations, codec.encode(record), key=user)
        ids.add(event_id)
        if n % 100 == 99:
            producer.flush(30.0)
    report = producer.flush(30.0)
    assert report.failed == 0 and report.pending == 0, report
    return ids


def test_the_consumer_example_prints_its_first_record_within_seconds(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    ids = fill(settings)
    code = python_block(PAGE.read_text())

    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", code],
        env=settings_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(30.0, proc.kill)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 5.0)
        first = proc.stdout.readline() if ready else ""
        elapsed = time.monotonic() - started
        assert first, f"nothing printed in {elapsed:.1f} s"
        assert elapsed < 5.0, f"first record after {elapsed:.1f} s"
        user, event_id, _pages = first.split(" ", 2)
        assert event_id in ids and re.fullmatch(r"u\d+", user), first
        watchdog.start()  # the rest in 30 s, or the example is killed and stdout ends
        lines = [first] + [proc.stdout.readline() for _ in range(RECORDS - 1)]
        assert all(lines), f"{sum(map(bool, lines))} of {RECORDS} records in 30 s"
        assert {line.split(" ", 2)[1] for line in lines} == ids  # the whole topic, once
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait(10)
