from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from streams.cli.produce import command as produce
from streams.io.codec import PAGE_VIEW, AvroCodec
from streams.settings import Settings
from tests.support.topics import TopicReader


def env_for(settings: Settings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "REDIS_URL": settings.effective_redis_url,
        "STREAMREC_TOPIC_PAGE_VIEWS": settings.topic_page_views,
        "STREAMREC_STATE_DIR": str(settings.state_dir),
    }


def test_rows_in_equal_events_in_topic(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "views.csv"
    rows = [f"u{i % 9},p{i % 13},{1_700_000_000_000 + (500 - i)}" for i in range(500)]
    path.write_text("user_id,page_id,ts_ms\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(produce, ["--input", str(path)], env=env_for(settings))
    assert result.exit_code == 0, result.output
    assert "delivered 500 of 500" in result.output

    codec = AvroCodec.bundled(PAGE_VIEW)
    reader = TopicReader(settings, settings.topic_page_views, f"check-{settings.model_name}")
    messages = reader.read_until(lambda ms: len(ms) >= 500, timeout=60)
    reader.close()
    records = [codec.decode(m.value()) for m in messages]
    assert len(records) == 500
    assert len({r["event_id"] for r in records}) == 500
    assert all(m.key() == r["user_id"].encode() for m, r in zip(messages, records, strict=True))
    assert sorted((r["user_id"], r["page_id"], r["ts"]) for r in records) == sorted(
        (u, p, int(t)) for u, p, t in (row.split(",") for row in rows)
    )


def test_bad_row_is_reported_with_its_line_and_nothing_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "views.csv"
    path.write_text("user_id,page_id,ts_ms\nu1,p1,1000\nu2,p2,not-a-time\n")
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "STREAMREC_STATE_DIR": str(tmp_path)}
    result = CliRunner().invoke(produce, ["--input", str(path)], env=env)
    assert result.exit_code != 0
    assert "line 3" in str(result.exception) + result.output
    assert os.path.exists(path)
