"""The bench's aggregation and report writing (the benches themselves are not run here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import render
from bench.report import paired_ratio, percentile, results_table, summary, target, write_json


def test_percentile_interpolates_and_handles_empty() -> None:
    assert percentile([10, 20, 30, 40, 50], 50) == 30
    assert percentile([0, 100], 99) == pytest.approx(99.0)
    assert math.isnan(percentile([], 50))


def test_summary_takes_the_median_of_the_runs_that_produced_a_value() -> None:
    fig = summary([3.0, None, 1.0, 2.0, 100.0])
    assert fig["median"] == 2.5 and fig["min"] == 1.0 and fig["max"] == 100.0
    assert fig["n"] == 4 and fig["runs"][1] is None
    assert summary([None, None])["median"] is None


def test_paired_ratio_is_the_median_of_per_round_ratios() -> None:
    # Round 2 ran while the machine was busy: both variants slowed, the ratio held.
    fig = paired_ratio([300.0, 150.0, 310.0], [100.0, 50.0, 100.0])
    assert fig["median"] == 3.0
    assert paired_ratio([1.0, None], [2.0, 4.0])["n"] == 1


def test_target_verdicts() -> None:
    assert target(2.5, 2.0, True, "x")["verdict"] == "met"
    assert target(60.0, 50.0, False, "x")["verdict"] == "missed"
    assert target(None, 1.0, True, "x")["verdict"] == "not measured"


def _throughput() -> dict:
    variants = {
        v: {"events_per_s": summary(runs, 0), "peak_rss_mb": summary([150.0, 160.0])}
        for v, runs in {
            "ours": [3000.0, 3100.0],
            "naive": [1000.0, 1000.0],
            "ceiling": [6000.0, 6200.0],
            "plain": [7000.0, 7100.0],
        }.items()
    }
    return {
        "meta": {"started_at": "now", "quick": True},
        "n_events": 10_000,
        "k": 10,
        "users_with_history": 9_000,
        "variants": variants,
        "ratios": {"ours_over_naive": paired_ratio([3000.0, 3100.0], [1000.0, 1000.0])},
        "targets": [target(3.05, 2.0, True, "scorer >= 2x naive Faust")],
    }


def test_report_is_rebuilt_from_the_section_files(tmp_path: Path) -> None:
    write_json("scorer_throughput", _throughput(), tmp_path)
    meta = {
        "quick": True,
        "seconds": 1.0,
        "services": "embedded",
        "machine": {
            "cores": 2,
            "cpu": "cpu",
            "python": "3.11",
            "load_avg_at_start": [0.1],
            "libraries": {"faust-streaming": "0.15"},
        },
        "world": {"n_users": 10, "n_pages": 5, "model": "covisit", "n_train": 100},
    }
    text = render.write_report(tmp_path, meta)
    assert (tmp_path / "REPORT.md").read_text() == text
    block = render.quoted_block(text)
    assert "| scorer, ours (Faust agent, batched), events/s | 3,050 |" in block
    assert "| ours / naive | 3.05x |" in block
    assert "**met**" in text
    memory = json.loads((tmp_path / "memory.json").read_text())
    assert memory["scorer"]["median"] == 155.0 and "trainer" not in memory


def test_results_table_skips_sections_that_did_not_run() -> None:
    lines = results_table({})
    assert len(lines) == 2  # header only


def test_the_catalog_report_shows_every_path_and_variant() -> None:
    from bench.catalog import report
    from bench.catalog_hide import _summary

    hide = _summary(
        [{"rest_s": 0.05 * n, "topic_s": 0.04 * n, "both_s": 0.05 * n} for n in range(1, 11)],
        0.01,
    )
    assert hide["both_s"]["max"] == 0.5 and hide["both_s"]["p50"] == 0.275
    variant = {
        "what": "w",
        "events_per_s": 1000,
        "ratio_to_off": 0.5,
        "mean_list_length": 10.0,
        "catalog_load_s": 0.2,
    }
    text = report(
        {
            "machine": {"cores": 2, "cpu": "c", "load_avg_at_start": [3.0, 0, 0]},
            "hide": {"services": "embedded", **hide},
            "filters": {
                "n_pages": 100_000,
                "n_score": 10,
                "rounds": 2,
                "n_train": 5,
                "variants": {"off": variant, "listed": variant},
            },
        }
    )
    assert "| every path | 275 ms | 496 ms | 500 ms |" in text
    assert "| listed | 1,000 | 0.50 | 10.0 | w |" in text


def test_engine_load_splits_latency_at_the_scorers_stamp() -> None:
    from types import SimpleNamespace

    from bench.engine_load import _split

    run = SimpleNamespace(
        sent={"a": 10.0, "b": 10.5, "c": 11.0},
        acked={"a": 10.004, "b": 10.506, "c": 11.01},
        scored={"a": 10.02, "b": 10.53},
        received={"a": 10.05, "b": 10.6},
        produce_s=1.0,
    )
    out = _split(run)  # type: ignore[arg-type]
    assert out["unanswered"] == 1 and out["offered_per_s"] == 3
    assert out["in"]["p50"] == pytest.approx(25.0) and out["out"]["p50"] == pytest.approx(50.0)
    assert out["p50"] == pytest.approx(75.0)
    assert out["produce_ack"]["p50"] == pytest.approx(5.0)  # of the answered events
    assert out["answered_per_s"] == 3  # 2 answered from t=10.0 to 10.6


def test_the_sweep_stops_at_the_first_rate_that_queues() -> None:
    from bench.engine_load import highest_bounded

    ok, slow = {"p99": 80.0, "unanswered": 0}, {"p99": 900.0, "unanswered": 0}
    lost = {"p99": 80.0, "unanswered": 3}
    assert highest_bounded({"1000": ok, "2000": ok, "3000": slow, "4000": ok}) == 2000
    assert highest_bounded({"2000": ok, "1000": ok, "3000": lost}) == 2000
    assert highest_bounded({"1000": slow}) is None


def test_the_engine_load_section_is_in_the_results_table() -> None:
    fig = summary([100.0, 120.0])
    leg = {"p50": fig, "p99": fig}
    config = {"p50_ms": fig, "p99_ms": fig, "in_ms": leg, "out_ms": leg}
    el = {
        "tuning": {
            "configs": {"before": config, "after": config},
            "broker_one_hop": {"p50_ms": fig, "p99_ms": fig},
            "after_over_before_p99": paired_ratio([1.0], [2.0]),
            "after_p99_over_hop_p99": paired_ratio([3.0], [2.0]),
        },
        "sweep": {
            "rates": {"5000": {"p99": 4200.0, "offered_per_s": 4800, "answered_per_s": 3900}}
        },
        "scaling": {
            "workers": {"1": {"events_per_s": summary([3000.0])}, "2": {"events_per_s": fig}},
            "two_over_one": paired_ratio([3300.0], [3000.0]),
        },
    }
    table = "\n".join(results_table({"engine_load": el}))
    assert "| after / before tuning, p99 at 1k ev/s | 0.5x |" in table
    assert "| sweep, 5000 ev/s asked (4800 offered, 3900 answered/s), p99 | 4,200 ms |" in table
    assert "| 2 workers / 1 worker, per round | 1.1x |" in table
