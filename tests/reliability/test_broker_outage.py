"""The broker goes away (a private Tansu, killed and restarted on the same port; memory
storage, so it comes back EMPTY and topics are recreated)."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.io.producer import ReliableProducer
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from tests.support.fixtures import on_every_engine
from tests.support.outages import PrivateServer, Traffic, env_for, replace, stopping, summary
from tests.support.scorer import http_json, wait_assigned
from tests.support.topics import PV, read_answers


def count_on_topic(settings: Settings, topic: str, timeout: float = 10.0) -> int:
    consumer = Consumer(settings.consumer_config(f"count-{time.monotonic_ns()}"))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        seen, idle_until = 0, time.monotonic() + 2.0
        deadline = time.monotonic() + timeout
        while time.monotonic() < min(idle_until, deadline):
            got = [m for m in consumer.consume(1000, 0.3) if m.error() is None]
            if got:
                seen += len(got)
                idle_until = time.monotonic() + 2.0
        return seen
    finally:
        consumer.close()


def high_watermarks(settings: Settings) -> int:
    consumer = Consumer(settings.consumer_config(f"hw-{time.monotonic_ns()}"))
    try:
        topic = settings.topic_page_views
        parts = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in parts
        )
    finally:
        consumer.close()


def test_producer_with_a_tiny_queue_blocks_while_the_broker_is_gone_and_accounts_for_all(
    settings: Settings, private_kafka: PrivateServer
) -> None:
    s = replace(settings, kafka_bootstrap_servers=private_kafka.address)
    ensure_topics(s)
    timeout_ms = 6000
    producer = ReliableProducer(
        s, **{"queue.buffering.max.messages": 10, "message.timeout.ms": timeout_ms}
    )
    value = PV.encode({"event_id": "e", "user_id": "u", "page_id": "p", "ts": 1})
    for _ in range(5):
        producer.produce(s.topic_page_views, value, key=b"u")
    assert producer.flush(10).delivered == 5

    private_kafka.stop()
    total = 30
    errors: list[BaseException] = []

    def send_all() -> None:
        try:
            for _ in range(total):
                producer.produce(s.topic_page_views, value, key=b"u")
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=send_all)
    sender.start()
    time.sleep(3)
    blocked = sender.is_alive() and not errors
    queued_while_down = producer.report.sent - 5
    private_kafka.start()
    ensure_topics(s)  # memory storage forgot them
    sender.join(40)
    report = producer.flush(20)
    on_topic = count_on_topic(s, s.topic_page_views)
    # A producer started after the restart delivers (see docs/guarantees.md: Tansu does
    # not know the old producer id, so the one that outlived it only times out).
    fresh = ReliableProducer(s)
    for _ in range(total):
        fresh.produce(s.topic_page_views, value, key=b"u")
    fresh_report = fresh.flush(20)
    summary(
        "producer_backpressure",
        sent=report.sent,
        delivered=report.delivered,
        failed=report.failed,
        pending=report.pending,
        errors=report.errors,
        blocked_while_down=blocked,
        queued_while_down=queued_while_down,
        on_topic_after_restart=on_topic,
        fresh_producer_delivered=fresh_report.delivered,
    )
    assert not errors, errors
    assert not sender.is_alive()
    assert blocked and queued_while_down <= 10 + 1  # the queue bound held: it waited
    assert report.sent == total + 5
    assert report.delivered + report.failed == report.sent and report.pending == 0
    # Delivered means on the (recreated) topic, apart from the 5 the old broker took
    # with it (memory storage).
    assert on_topic == report.delivered - 5
    assert fresh_report.delivered == total


def test_streamrec_produce_reports_every_row_across_a_broker_restart(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path, private_kafka: PrivateServer
) -> None:
    s = replace(settings, kafka_bootstrap_servers=private_kafka.address)
    ensure_topics(s)
    rows = 300
    csv = tmp_path / "views.csv"
    csv.write_text(
        "user_id,page_id,ts_ms\n"
        + "".join(f"u{i % 20},p{i % 30},{1_700_000_000_000 + i}\n" for i in range(rows))
    )
    proc = ChildProcess.streamrec(
        ["produce", "--input", str(csv), "--rate", "100"],
        env_for(s, settings_env),
        tmp_path / "produce.log",
    )
    with stopping(proc):
        wait_for(lambda: high_watermarks(s) > 0, 30, "the first rows on the topic")
        private_kafka.stop()
        time.sleep(2.0)
        private_kafka.start()
        ensure_topics(s)
        try:
            proc.popen.wait(15)
            interrupted = False
        except subprocess.TimeoutExpired:  # still waiting on deliveries: ask it to stop
            interrupted = True
        code = proc.stop(signal.SIGTERM, timeout=15)
    out = proc.output()
    finished = re.search(
        r"^delivered (\d+) of (\d+) page views to [^\s;]+(?:; (\d+) FAILED)?", out, re.MULTILINE
    )
    stopped = re.search(
        r"^(interrupted by SIGTERM|stopped .*?): delivered (\d+) of (\d+) page views "
        r".*?; (\d+) failed .*?; (\d+) not confirmed",
        out,
        re.MULTILINE,
    )
    on_topic = count_on_topic(s, s.topic_page_views)
    line = (finished or stopped).group(0) if (finished or stopped) else ""
    summary(
        "produce_cli_broker_restart",
        rows=rows,
        exit_code=code,
        interrupted=interrupted,
        report=repr(line[:160]),
        on_topic_after_restart=on_topic,
    )
    assert "Traceback" not in out, out[-3000:]
    assert line, out[-3000:]
    if finished:  # it got through: every row is accounted for
        delivered, sent, failed = (int(g or 0) for g in finished.groups())
        assert sent == rows and delivered + failed == sent
        assert code == (1 if failed else 0)
    else:  # stopped by SIGTERM (143) or by a fatal producer error (1): counts add up
        assert stopped is not None
        delivered, sent, failed, pending = (int(g) for g in stopped.groups()[1:])
        assert delivered + failed + pending == sent <= rows
        assert code == (143 if stopped.group(1).startswith("interrupted") else 1)
    assert on_topic <= delivered  # what the old broker held before the kill is gone


@on_every_engine
def test_scorer_survives_or_exits_cleanly_when_the_broker_goes_away(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path, private_kafka: PrivateServer
) -> None:
    s = replace(settings, kafka_bootstrap_servers=private_kafka.address)
    ensure_topics(s)
    scorer = ChildProcess.streamrec(
        ["--log-level", "info", "scorer"], env_for(s, settings_env), tmp_path / "scorer.log"
    )
    base = f"http://127.0.0.1:{s.web_port}"
    outcome: dict[str, Any] = {}
    with stopping(scorer):
        wait_assigned(s, scorer)
        before = Traffic(s, rate=100.0, prefix="before").start()
        time.sleep(2)
        before.stop()
        answered_before = read_answers(s, set(before.event_ids), timeout=20)
        private_kafka.stop()
        time.sleep(4)
        outcome["alive_during"] = scorer.alive()
        outcome["health_during"] = (
            http_json(f"{base}/healthz", timeout=5)[0] if scorer.alive() else None
        )
        private_kafka.start()
        ensure_topics(s)
        after = Traffic(s, rate=100.0, prefix="after").start()
        time.sleep(3)
        after.stop()
        try:
            answered_after = read_answers(s, set(after.event_ids), timeout=40)
            outcome["answered_after"] = len(set(answered_after.ids) & set(after.event_ids))
        except Exception as exc:
            outcome["answered_after"] = f"error {exc!r}"
        outcome["alive_after"] = scorer.alive()
        code = scorer.stop(signal.SIGTERM, timeout=15)
    summary(
        "scorer_broker_outage",
        events_before=len(before.event_ids),
        answered_before=len(set(answered_before.ids)),
        events_after=len(after.event_ids),
        **outcome,
        exit_code=code,
    )
    assert not answered_before.lost
    # The minimum: no crash loop, no hang; alive, or gone with a non-zero code.
    assert outcome["alive_after"] or code != 0


def test_a_fatal_producer_error_stops_sending_and_says_what_was_delivered(
    settings: Settings,
) -> None:
    from confluent_kafka import KafkaError

    from streams.errors import ProducerFailed

    producer = ReliableProducer(settings)
    value = PV.encode({"event_id": "e", "user_id": "u", "page_id": "p", "ts": 1})
    producer.produce(settings.topic_page_views, value, key=b"u")
    assert producer.flush(10).delivered == 1
    # What librdkafka reports when, e.g., the broker forgot the idempotent producer id
    # while messages were in flight (seen with the embedded broker restarted).
    producer._error(KafkaError(KafkaError.UNKNOWN_PRODUCER_ID, "simulated", fatal=True))
    try:
        producer.produce(settings.topic_page_views, value, key=b"u")
        raised = None
    except ProducerFailed as exc:
        raised = exc
    assert raised is not None and "1 delivered, 0 failed, 0 not confirmed of 1 sent" in str(raised)
    assert producer.report.sent == 1
