"""Replay: the whole ``streamrec replay`` workflow, from a time range to a published model.

Read the range (:class:`streams.io.range_reader.KafkaRangeReader`), decode and order it
(:func:`streams.replay.rebuild.collect`), train a fresh model test-then-train, judge it
against the current model's spec when gated, and publish it
(:func:`streams.replay.publish.publish`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from streams.errors import StreamrecError
from streams.io.codec import page_view_codec
from streams.io.range_reader import KafkaRangeReader
from streams.progress import Progress
from streams.replay.publish import EXIT_GATE_REFUSED, publish
from streams.replay.rebuild import (
    ReplayLog,
    Verdict,
    build_snapshot,
    check_gate_metric,
    collect,
    judge,
    train,
)
from streams.services.probes import require
from streams.settings import Settings
from streams.time_range import TimeRange
from streams.wiring import snapshot_signing_key, snapshot_store

log = logging.getLogger(__name__)

#: Exit status when no page view of the topic lies in the range: nothing to train on.
EXIT_EMPTY_RANGE = 4


class EmptyRange(StreamrecError):
    """No page view of the topic has a record timestamp in the range."""

    exit_code = EXIT_EMPTY_RANGE


@dataclass(frozen=True)
class ReplayRequest:
    """What ``streamrec replay`` was asked to do."""

    time_range: TimeRange
    model_spec: str | None
    params: dict[str, str]
    publish_mode: str
    gate: str | None
    idle_timeout: float
    lateness: float
    topic: str | None


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr, sort_keys=True))


def run_replay(settings: Settings, request: ReplayRequest) -> tuple[dict[str, Any], int]:
    """Run a replay; return its JSON summary and the exit status (0, or refused by the gate).

    Raises :class:`EmptyRange` when the range holds no page view (nothing is trained,
    judged or published).
    """
    from online_model.registry import make_model  # imported late: it imports every model

    k = settings.k
    time_range = request.time_range
    gate = request.gate
    publish_mode = request.publish_mode
    if gate:
        check_gate_metric(gate, k)
    spec_params = request.params
    name = request.model_spec or settings.model_spec
    model = make_model(name, spec_params)  # a bad spec fails before any reading
    key = snapshot_signing_key(settings)
    target = request.topic or settings.topic_page_views
    require(settings, kafka=True, redis=publish_mode != "none" or bool(gate))
    codec = page_view_codec(settings)
    reader = KafkaRangeReader(settings, target, request.idle_timeout, request.lateness)
    partitions = reader.partitions()
    with Progress(f"reading {target}", unit="records") as bar:
        replay_log = collect(
            bar.iterate(reader.read(time_range)), codec.decode, time_range, target, partitions
        )
    click.echo(
        f"replay events={len(replay_log.events)} bad={replay_log.n_bad} "
        f"scanned={reader.scanned} partitions={replay_log.partitions}",
        err=True,
    )
    if not replay_log.events:
        # A model trained on nothing, judged against another trained on nothing, would
        # be "0.0000 does not beat 0.0000": say what happened instead.
        raise EmptyRange(_empty_range(time_range, target, reader, replay_log))

    with Progress(f"training {name}", len(replay_log.events), "page views") as bar:
        report = train(
            model,
            replay_log.events,
            k,
            settings.history_length,
            name,
            spec_params,
            on_event=lambda: bar.update(1),
        )

    verdict = _judge(settings, gate, report, replay_log, k) if gate else None
    spec = {
        "name": name,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "params": _json_safe(model._get_params()),
    }
    snap = build_snapshot(model, replay_log, report, settings.model_name, spec)
    out: dict[str, Any] = {
        "metrics": report,
        "replay": replay_log.summary(),
        "model": spec,
    }
    published, refused = publish(settings, snap, key, publish_mode, verdict)
    out.update(published)
    return out, EXIT_GATE_REFUSED if refused else 0


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _empty_range(
    time_range: TimeRange, topic: str, reader: KafkaRangeReader, replay_log: ReplayLog
) -> str:
    start = _iso(time_range.start_ms) if time_range.start_ms is not None else "the beginning"
    end = _iso(time_range.end_ms) if time_range.end_ms is not None else "the end"
    if reader.first_ts_ms is None or reader.last_ts_ms is None:
        found = "the topic has no records"
    else:
        found = (
            f"its {reader.scanned} records read are stamped {_iso(reader.first_ts_ms)} .. "
            f"{_iso(reader.last_ts_ms)}"
        )
    if replay_log.n_bad:
        found += f"; {replay_log.n_bad} records of the range did not decode"
    return (
        f"no page view on topic {topic} has a record timestamp in [{start}, {end}) "
        f"({found}); nothing was trained, judged or published"
    )


def _judge(
    settings: Settings, gate: str, report: dict[str, Any], replay_log: ReplayLog, k: int
) -> Verdict:
    store = snapshot_store(settings)
    current = store.load_current()  # refused (exit 2) if it does not verify
    with Progress(
        "evaluating the current model's spec",
        len(replay_log.events) if current else 0,
        "page views",
    ) as bar:
        return judge(
            gate,
            report,
            current.model if current else None,
            current.meta.version if current else None,
            replay_log.events,
            k,
            settings.history_length,
            on_event=lambda: bar.update(1),
        )
