"""Scorer processes die, restart, join and leave while page views flow."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from streams.io.topics import ensure_topics
from streams.services.embedded import free_port
from streams.services.processes import ChildProcess
from streams.settings import Settings
from tests.support.fixtures import on_every_engine
from tests.support.outages import Traffic, stopping, summary
from tests.support.scorer import wait_assigned, wait_ready
from tests.support.topics import read_answers

#: Scorer behaviour: checked on each scorer engine.
pytestmark = on_every_engine

#: Faust commits the offsets of acknowledged events every second (broker_commit_interval).
COMMIT_INTERVAL_S = 1.0


def test_scorer_sigkill_mid_stream_then_restart_loses_nothing(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    batch_size, rate = 100, 150.0
    env = {**settings_env, "STREAMREC_BATCH_SIZE": str(batch_size)}
    ensure_topics(settings)
    first = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer-1.log")
    second: ChildProcess | None = None
    traffic = Traffic(settings, rate=rate)
    with stopping(first):
        wait_assigned(settings, first)
        traffic.start()
        time.sleep(4)  # well into the stream: several commits behind us
        first.popen.send_signal(signal.SIGKILL)
        assert first.popen.wait(5) == -signal.SIGKILL
        first.stop()
        killed_after = len(traffic.event_ids)
        second = ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer-2.log")
        with stopping(second):
            wait_ready(settings, second)
            time.sleep(3)
            produced = traffic.stop()
            answers = read_answers(settings, set(traffic.event_ids), timeout=45)
            assert second.stop() == 0, second.output()[-3000:]
    # What the killed scorer had sent but not yet committed is scored again: at most one
    # commit interval of traffic plus the batches in flight.
    bound = int(rate * COMMIT_INTERVAL_S) + 2 * batch_size
    summary(
        "scorer_sigkill",
        events_in=produced,
        killed_after=killed_after,
        recommendations_out=len(answers.recommendations),
        duplicates=answers.duplicates,
        lost=len(answers.lost),
        dlq=0,
        duplicate_bound=bound,
    )
    assert not answers.lost, f"{len(answers.lost)} page views never answered"
    assert answers.duplicates <= bound


def _committed(settings: Settings) -> dict[int, int]:
    consumer = Consumer(settings.consumer_config(settings.scorer_group))
    try:
        meta = consumer.list_topics(settings.topic_page_views, timeout=10)
        parts = [
            TopicPartition(settings.topic_page_views, p)
            for p in meta.topics[settings.topic_page_views].partitions
        ]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def test_scorer_sigterm_finishes_commits_and_exits_zero_within_10s(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    first = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer-1.log")
    traffic = Traffic(settings, rate=300.0)
    with stopping(first):
        wait_assigned(settings, first)
        traffic.start()
        time.sleep(3)
        started = time.monotonic()
        code = first.stop(signal.SIGTERM, timeout=15)
        took = time.monotonic() - started
        stopped_after = len(traffic.event_ids)
    assert code == 0, first.output()[-3000:]
    assert took < 10, f"SIGTERM took {took:.1f} s"
    committed = _committed(settings)
    # Whatever was committed is answered: read the answers now, before a second scorer.
    committed_total = sum(o for o in committed.values() if o > 0)
    before = read_answers(settings, set(), timeout=20, at_least=committed_total)
    second = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer-2.log")
    with stopping(second):
        wait_ready(settings, second)
        produced = traffic.stop()
        answers = read_answers(settings, set(traffic.event_ids), timeout=45)
        assert second.stop() == 0, second.output()[-3000:]
    summary(
        "scorer_sigterm",
        events_in=produced,
        stopped_after=stopped_after,
        exit_code=code,
        seconds_to_exit=round(took, 2),
        answered_before_restart=len(before.recommendations),
        committed=committed_total,
        recommendations_out=len(answers.recommendations),
        duplicates=answers.duplicates,
        lost=len(answers.lost),
        dlq=0,
    )
    assert not answers.lost
    # A clean stop commits what it answered: its successor re-scores nothing.
    assert answers.duplicates == 0
    assert committed_total == len(before.recommendations) == len(set(before.ids))


def test_second_scorer_joins_then_leaves_and_every_view_is_answered(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    a = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer-a.log")
    b_port = free_port()
    b_settings = Settings(**{**settings.__dict__, "web_port": b_port})
    b_env = {**settings_env, "STREAMREC_WEB_PORT": str(b_port)}
    traffic = Traffic(settings, rate=150.0)
    with stopping(a):
        wait_assigned(settings, a)
        traffic.start()
        time.sleep(2)
        b = ChildProcess.streamrec(["scorer"], b_env, tmp_path / "scorer-b.log")
        with stopping(b):
            wait_assigned(b_settings, b)
            time.sleep(2)
            b_code = b.stop(signal.SIGTERM)
        time.sleep(3)
        produced = traffic.stop()
        answers = read_answers(settings, set(traffic.event_ids), timeout=45)
        assert a.alive()
        assert a.stop() == 0, a.output()[-3000:]
    summary(
        "scorer_join_leave",
        events_in=produced,
        recommendations_out=len(answers.recommendations),
        duplicates=answers.duplicates,
        lost=len(answers.lost),
        dlq=0,
        leaver_exit_code=b_code,
    )
    assert b_code == 0, b.output()[-3000:]
    assert not answers.lost
