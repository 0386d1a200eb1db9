"""Every kind of bad page view goes to the DLQ; the good ones around it are scored; the
scorer process neither dies nor restarts its agent."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import fastavro

from streams.io.codec import HEADER, MAGIC_BYTE, _parse
from streams.io.producer import ReliableProducer, page_view
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess
from streams.settings import Settings
from tests.support.fixtures import on_every_engine
from tests.support.outages import stopping, summary
from tests.support.scorer import http_json, http_text, wait_assigned
from tests.support.topics import PV, REC, TopicReader, read_answers

#: Scorer behaviour: checked on each scorer engine.
pytestmark = on_every_engine

MAX_BYTES = 4096
SCHEMA = PV._registry.schema_for(PV.schema_id)  # the current PageView schema, as registered


def _raw(record: dict, schema: dict = SCHEMA, schema_id: int = PV.schema_id) -> bytes:
    """Frame ``record`` written with ``schema`` under ``schema_id``, with no checks."""
    out = io.BytesIO()
    out.write(HEADER.pack(MAGIC_BYTE, schema_id))
    fastavro.schemaless_writer(out, _parse(schema), record)
    return out.getvalue()


def bad_inputs() -> dict[str, tuple[bytes | None, bytes | None]]:
    """name -> (key, value); keys are unique so each dead letter can be told apart."""
    good = page_view("ux", "px", 1_700_000_000_000, event_id="bad-source")
    sample = PV.encode(good)
    without_page = {**SCHEMA, "fields": [f for f in SCHEMA["fields"] if f["name"] != "page_id"]}
    placeholder = _raw({**good, "page_id": "ZZZZ"})
    cases: dict[str, tuple[bytes | None, bytes | None]] = {
        "empty": (None, b""),
        "null_value": (None, None),
        "one_byte": (None, b"\x00"),
        "two_bytes": (None, b"\x00\x00"),
        "three_bytes": (None, b"\x00\x00\x00"),
        "four_bytes": (None, b"\x00\x00\x00\x01"),
        "wrong_magic": (None, b"\x01" + sample[1:]),
        "unknown_schema_id": (None, sample[:1] + struct.pack(">I", 4242) + sample[5:]),
        "other_record_schema_id": (
            None,
            sample[:1] + struct.pack(">I", REC.schema_id) + sample[5:],
        ),
        "truncated_body": (None, sample[:-6]),
        "trailing_garbage": (None, sample + b"\x00\x01\x02"),
        "missing_page_id": (
            None,
            _raw({k: v for k, v in good.items() if k != "page_id"}, without_page),
        ),
        "empty_user_id": (None, _raw({**good, "user_id": ""})),
        "empty_event_id": (None, _raw({**good, "event_id": ""})),
        "invalid_utf8": (None, placeholder.replace(b"ZZZZ", b"\xff\xfe\xfd\xfc")),
        "huge_string_length": (None, sample[:5] + b"\xfe\xff\xff\xff\x0f" + sample[6:]),
        "oversized": (None, PV.encode({**good, "context": {"blob": "x" * (MAX_BYTES + 10)}})),
        "key_not_user_id": (b"someone-else", sample),
    }
    # Key every case by name, except the one that is about the key itself.
    return {
        name: (key if key is not None else f"bad-{name}".encode(), value)
        for name, (key, value) in cases.items()
    }


def test_bad_page_views_are_dead_lettered_and_the_scorer_keeps_going(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    env = {**settings_env, "STREAMREC_MAX_EVENT_BYTES": str(MAX_BYTES)}
    scorer = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer.log")
    bad = bad_inputs()
    by_key = {key: name for name, (key, _) in bad.items()}
    good_ids: list[str] = []
    producer = ReliableProducer(settings)
    with stopping(scorer):
        wait_assigned(settings, scorer)
        pid = scorer.popen.pid
        for round_ in range(3):  # bad input before, between and after good input
            for name, (key, value) in bad.items():
                view = page_view(
                    f"u{len(good_ids) % 9}",
                    f"p{len(good_ids) % 13}",
                    int(time.time() * 1000),
                    event_id=f"good-{len(good_ids)}",
                )
                producer.produce(
                    settings.topic_page_views, PV.encode(view), key=view["user_id"].encode()
                )
                good_ids.append(view["event_id"])
                producer.produce(
                    settings.topic_page_views,
                    value,
                    key=key,
                    headers=[("case", name.encode()), ("round", b"%d" % round_)],
                )
        report = producer.flush()
        assert report.delivered == report.sent == len(good_ids) + 3 * len(bad)
        dlq = TopicReader(settings, settings.topic_dlq, f"dlq-{settings.model_name}")
        try:
            dead = dlq.read_until(lambda ms: len(ms) >= 3 * len(bad), timeout=40)
            dlq.read_until(lambda _: False, 1.0)  # nothing more should come
        finally:
            dlq.close()
        answers = read_answers(settings, set(good_ids), timeout=30)
        # Still the same process, still consuming: one more good view is answered.
        late = page_view("u1", "p1", int(time.time() * 1000), event_id="good-late")
        producer.produce(settings.topic_page_views, PV.encode(late), key=b"u1")
        producer.flush()
        late_answer = read_answers(settings, {"good-late"}, timeout=20)
        metrics = http_text(f"http://127.0.0.1:{settings.web_port}/metrics")
        status, health = http_json(f"http://127.0.0.1:{settings.web_port}/healthz")
        same_process = scorer.alive() and scorer.popen.pid == pid
        assert scorer.stop() == 0, scorer.output()[-3000:]
    reasons: dict[str, str] = {}
    for msg in dead:
        headers = {k: v.decode() for k, v in msg.headers()}
        name = by_key[msg.key()]
        reasons[name] = headers["streamrec.error.reason"]
        assert headers["streamrec.original.topic"] == settings.topic_page_views
        assert int(headers["streamrec.original.partition"]) >= 0
        assert int(headers["streamrec.original.offset"]) >= 0
        assert headers["streamrec.error.class"] and headers["streamrec.error.message"]
        assert msg.value() == bad[name][1] or (msg.value() is None and bad[name][1] == b"")
        assert headers.get("case") == name, f"{name}: the producer's headers were dropped"
    dead_letters = sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("streamrec_dead_letters_total{")
    )
    summary(
        "bad_input",
        events_in=len(good_ids) + 3 * len(bad),
        good=len(good_ids),
        bad=3 * len(bad),
        recommendations_out=len(answers.recommendations),
        duplicates=answers.duplicates,
        lost=len(answers.lost),
        dlq=len(dead),
        same_pid=same_process,
    )
    print("reasons:", reasons)
    assert sorted(by_key[m.key()] for m in dead) == sorted(list(bad) * 3)
    assert not answers.lost and answers.duplicates == 0
    assert "good-late" in late_answer.ids
    assert same_process and status == 200 and health["assigned_partitions"] > 0
    assert dead_letters == 3 * len(bad)
    assert "Traceback" not in scorer.output(), scorer.output()[-3000:]
    assert reasons["oversized"] == "too_large" and reasons["key_not_user_id"] == "key_mismatch"
    assert reasons["invalid_utf8"] == "corrupt_body"
    assert reasons["unknown_schema_id"] == reasons["other_record_schema_id"] == "unknown_schema_id"
