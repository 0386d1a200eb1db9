"""Consumers that receive nothing while behind the log notice, say so and recover.

The broker is made to answer every fetch empty the way the embedded broker does in
production (README, "The embedded broker"): a partition written in one-record batches
takes it longer to list than the consumer's fetch wait (1 ms here), so every fetch comes
back empty, forever, while the records are there. A consumer that waits for records then
never gets one; streamrec's consumers must detect it, log it, show it and carry on with a
consumer that waits longer, learning or answering every event exactly as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import Producer

from streams.io.producer import page_view
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess
from streams.settings import Settings
from streams.trainer.loop import Trainer
from streams.trainer.run import run_trainer
from tests.support.fixtures import on_every_engine
from tests.support.outages import PrivateServer, replace, stopping, summary
from tests.support.scorer import http_json, http_text, wait_assigned
from tests.support.topics import PV, read_answers

#: Records in the one partition: listing them takes the broker far longer than 1 ms.
RECORDS = 30_000


def fill_in_one_record_batches(settings: Settings, n: int, prefix: str) -> list[str]:
    """``n`` page views on the page-view topic, one record per batch; their event ids."""
    producer = Producer(settings.producer_config(**{"batch.num.messages": 1, "linger.ms": 0}))
    ids = []
    for i in range(n):
        view = page_view(f"u{i % 200}", f"p{(i // 200 + i % 7) % 60}", 1_700_000_000_000 + i)
        view["event_id"] = f"{prefix}-{i}"
        while True:
            try:
                producer.produce(
                    settings.topic_page_views, PV.encode(view), key=view["user_id"].encode()
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
        ids.append(view["event_id"])
    assert producer.flush(60) == 0
    return ids


def starved(settings: Settings, private_kafka: PrivateServer) -> Settings:
    """One partition, a 1 ms fetch wait and a 2 s stall timeout, on the private broker."""
    return replace(
        settings,
        kafka_bootstrap_servers=private_kafka.address,
        partitions=1,
        fetch_max_wait_ms=1,
        stall_timeout_s=2.0,
    )


def test_a_starved_trainer_detects_the_stall_and_learns_every_event_once(
    settings: Settings, private_kafka: PrivateServer
) -> None:
    s = starved(settings, private_kafka)
    ensure_topics(s, [s.topic_page_views, s.topic_pages])
    fill_in_one_record_batches(s, RECORDS, "t")
    stop = threading.Event()
    ready: list[Trainer] = []
    result: list[Trainer] = []
    thread = threading.Thread(
        target=lambda: result.append(run_trainer(s, stop_event=stop, on_ready=ready.append)),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (ready and ready[0].events_learned >= RECORDS):
        time.sleep(0.2)
    stop.set()
    thread.join(30)
    trainer = result[0] if result else (ready[0] if ready else None)
    assert trainer is not None, "the trainer never started"
    health = trainer.source.health()  # type: ignore[attr-defined]
    summary(
        "trainer_starved_fetches",
        records=RECORDS,
        learned=trainer.events_learned,
        stalls=health["stalls"],
        fetch_wait_ms=health["fetch_wait_ms"],
        offsets=trainer.offsets,
    )
    assert health["stalls"] >= 1 and health["fetch_wait_ms"] > 1
    assert trainer.events_learned == RECORDS  # every event, none twice
    assert trainer.model.n_events_learned == RECORDS
    assert trainer.offsets == {s.topic_page_views: {0: RECORDS}}
    assert not health["stalled"]


@on_every_engine
def test_a_starved_scorer_detects_the_stall_shows_it_and_answers_every_view(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path, private_kafka: PrivateServer
) -> None:
    s = starved(settings, private_kafka)
    ensure_topics(s)
    ids = fill_in_one_record_batches(s, RECORDS, "s")
    scorer = ChildProcess.streamrec(
        ["--log-level", "info", "scorer"], {**settings_env, **s.to_env()}, tmp_path / "scorer.log"
    )
    with stopping(scorer):
        wait_assigned(s, scorer)
        answers = read_answers(s, set(ids), timeout=120)
        ready = http_json(f"http://127.0.0.1:{s.web_port}/readyz", timeout=5)[1]
        metrics = http_text(f"http://127.0.0.1:{s.web_port}/metrics", timeout=5)
        code = scorer.stop(signal.SIGTERM, timeout=20)
    log = scorer.output()
    consumer = ready.get("consumer", {})
    summary(
        f"scorer_starved_fetches[{s.scorer_engine}]",
        records=RECORDS,
        answered=len(set(answers.ids) & set(ids)),
        duplicates=answers.duplicates,
        consumer=consumer,
        exit_code=code,
    )
    assert not answers.lost, f"{len(answers.lost)} views unanswered"
    assert consumer.get("stalls", 0) >= 1 and consumer["stalled"] is False
    assert consumer["fetch_wait_ms"] > 1  # the kafka engine: a new consumer; faust: the same
    assert consumer["replacements"] == (consumer["stalls"] if s.scorer_engine == "kafka" else 0)
    assert "consumer_stalled reader=scorer" in log
    stalls = [ln for ln in metrics.splitlines() if ln.startswith("streamrec_consumer_stalls ")]
    assert stalls and float(stalls[0].split()[1]) == consumer["stalls"]
    assert code == 0


#: Reads consumer lag in a child process while the parent stops and resumes the broker.
_LAG_READER = """
import sys, time
from streams.io.consumer_lag import LagReader
from streams.settings import Settings
s = Settings(kafka_bootstrap_servers=sys.argv[1], topic_page_views=sys.argv[2])
reader = LagReader(s)
groups = {"scorer": "g-scorer", "trainer": "g-trainer"}
reader.read(groups, s.topic_page_views)
print("read", flush=True)
sys.stdin.readline()                      # the broker is stopped now
for _ in range(3):
    try:
        reader.read(groups, s.topic_page_views)
    except Exception as exc:
        print("failed", type(exc).__name__, flush=True)
print("continue", flush=True)
sys.stdin.readline()                      # the broker answers again
deadline = time.monotonic() + 8
while time.monotonic() < deadline:
    try:
        reader.read(groups, s.topic_page_views)
    except Exception:
        pass
    time.sleep(0.3)
print(len(reader.read(groups, s.topic_page_views)), "rows", flush=True)
"""


def test_reading_consumer_lag_survives_a_broker_that_stops_answering(
    settings: Settings, private_kafka: PrivateServer
) -> None:
    """librdkafka 2.16's admin ListConsumerGroupOffsets aborts the process (assertion
    ``eonce->refcnt > 0``) when a request that timed out is answered later: the scorer
    read lag that way and died after a broker stall. The lag reader must survive it."""
    s = replace(settings, kafka_bootstrap_servers=private_kafka.address)
    ensure_topics(s)
    child = subprocess.Popen(
        [sys.executable, "-c", _LAG_READER, s.bootstrap_servers, s.topic_page_views],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert private_kafka.process is not None
    pid = private_kafka.process.pid
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "read"
        os.kill(pid, signal.SIGSTOP)
        child.stdin.write("\n")
        child.stdin.flush()
        lines = []
        while (line := child.stdout.readline().strip()) != "continue" and line:
            lines.append(line)
        os.kill(pid, signal.SIGCONT)
        child.stdin.write("\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
        if child.poll() is None:
            child.kill()
    summary("lag_reader_broker_stall", failed_reads=len(lines), exit_code=child.returncode)
    assert len(lines) == 3 and all(line.startswith("failed") for line in lines)
    assert child.returncode == 0, err[-2000:]
    assert out.strip().endswith("rows")


def test_replay_and_retrain_readers_read_a_starved_partition_to_its_end(
    settings: Settings, private_kafka: PrivateServer
) -> None:
    """Batch readers stop a partition after an idle timeout; silence while the broker
    still holds records must not end it (it would replay or retrain on a part of the log
    as if it were all)."""
    from streams.io.range_reader import KafkaRangeReader
    from streams.retrain.kafka_ranges import OffsetRange, ReadSpec, read_range
    from streams.time_range import TimeRange

    s = starved(settings, private_kafka)
    ensure_topics(s, [s.topic_page_views])
    fill_in_one_record_batches(s, RECORDS, "r")
    replay = KafkaRangeReader(s, s.topic_page_views, idle_timeout=2.0)
    replayed = sum(1 for _ in replay.read(TimeRange()))
    spec = ReadSpec.from_settings(s, TimeRange(), idle_timeout=2.0, lateness=0.0)
    retrained = read_range(spec, OffsetRange(s.topic_page_views, 0, 0, RECORDS))
    summary(
        "batch_readers_starved_fetches",
        records=RECORDS,
        replayed=replayed,
        replay_stalls=replay.stalls,
        retrain_scanned=retrained.report.scanned,
        retrain_stopped=retrained.report.stopped,
    )
    assert replayed == RECORDS and replay.stalls >= 1 and replay.stopped == {0: "idle"}
    assert retrained.report.scanned == RECORDS and retrained.report.stopped != "idle"


def test_a_scorer_whose_broker_stops_past_the_session_timeout_rejoins_and_answers_all(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path, private_kafka: PrivateServer
) -> None:
    """SIGSTOP the broker for longer than the session timeout while page views flow and
    lag is read (/metrics): the scorer loses its partitions, must not abort, rejoins
    when the broker answers again and answers every view."""
    from tests.support.outages import Traffic

    s = replace(settings, kafka_bootstrap_servers=private_kafka.address)
    ensure_topics(s)
    scorer = ChildProcess.streamrec(
        ["--log-level", "info", "scorer"], {**settings_env, **s.to_env()}, tmp_path / "scorer.log"
    )
    assert private_kafka.process is not None
    pid = private_kafka.process.pid
    base = f"http://127.0.0.1:{s.web_port}"
    with stopping(scorer):
        wait_assigned(s, scorer)
        traffic = Traffic(s, rate=100.0, prefix="stop").start()
        time.sleep(2)
        scrapes = threading.Event()

        def scrape() -> None:  # lag is read at each /metrics, as a monitoring system does
            while not scrapes.is_set():
                with contextlib.suppress(OSError):
                    http_text(f"{base}/metrics", timeout=3)
                time.sleep(0.2)

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        try:
            # A short stop catches lag reads half done (metadata answered, offsets not);
            # the longer one outlasts the session timeout: the partitions are lost.
            for pause in [2.0, 2 * s.session_timeout_ms / 1000]:
                os.kill(pid, signal.SIGSTOP)
                time.sleep(pause)
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.7)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(5)
        scrapes.set()
        scraper.join(10)
        time.sleep(2)
        sent = traffic.stop()
        answers = read_answers(s, set(traffic.event_ids), timeout=90)
        alive = scorer.alive()
        code = scorer.stop(signal.SIGTERM, timeout=20)
    log = scorer.output()
    summary(
        "scorer_broker_sigstop",
        sent=sent,
        answered=len(set(answers.ids) & set(traffic.event_ids)),
        duplicates=answers.duplicates,
        alive_after=alive,
        exit_code=code,
        partitions_lost="partitions_lost" in log,
    )
    assert "Assertion" not in log and alive, log[-3000:]
    assert not answers.lost, f"{len(answers.lost)} of {sent} views unanswered"
    assert code == 0
