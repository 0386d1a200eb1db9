"""The soak bench's pure parts: /proc and metrics parsing, the RSS slope, the checks and
the report (the soak itself runs the pipeline for an hour and is not run here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import soak, soak_report

LIMITS = {"rate": 100.0, "max_lag_s": 30.0, "max_rss_slope": 30.0}


def sample(
    t: float,
    phase: str = "run",
    rss: float = 100.0,
    lag: int | None = 5,
    cpu: float | None = None,
) -> dict[str, Any]:
    return {
        "t": t,
        "phase": phase,
        "rss_mb": {p: rss for p in soak_report.PROCESSES},
        "cpu_s": {p: t / 2 if cpu is None else cpu for p in soak_report.PROCESSES},
        "lag": {g: lag for g in soak_report.GROUPS},
        "produced": int(t * 100),
        "learned": int(t * 100),
        "scored": float(t * 100),
    }


def healthy_final(**changes: Any) -> dict[str, Any]:
    final = {
        "duration_s": 1200.0,
        "produced": 120_000,
        "answered": 120_000,
        "duplicates": 0,
        "unexpected": 0,
        "dead_letters": 0,
        "end_offsets": 120_000,
        "learned_offsets": 120_000,
        "events_seen": 120_000,
        "final_version": 2400,
        "error_lines": {"trainer": 0, "scorer": 0},
        "exit_codes": {"produce": 130, "trainer": 0, "scorer": 0},
        "drained": True,
        "drain_s": 6.0,
        "died": None,
    }
    final.update(changes)
    return final


def run_samples(duration: float = 1200.0, every: float = 10.0, **kw: Any) -> list[dict[str, Any]]:
    return [sample(i * every, **kw) for i in range(int(duration / every))]


def verdicts(summary: dict[str, Any]) -> dict[str, bool | None]:
    return {c["name"]: c["passed"] for c in summary["checks"]}


# -- parsing ----------------------------------------------------------------------------------
def test_vm_rss_is_read_from_proc_status_in_mb() -> None:
    status = "Name:\tpython\nVmPeak:\t 900000 kB\nVmHWM:\t  300000 kB\nVmRSS:\t  204800 kB\n"
    assert soak_report.vm_rss_mb(status) == 200.0
    assert soak_report.vm_rss_mb("Name:\tkthreadd\n") is None


def test_cpu_seconds_add_utime_and_stime_even_when_the_name_has_spaces() -> None:
    # Fields after the name: state(3) ppid pgrp session tty tpgid flags minflt cminflt
    # majflt cmajflt utime(14) stime(15) ...
    stat = "4242 (python -m (x)) S 1 4242 4242 0 -1 4194304 10 0 0 0 250 50 0 0 20 0 9"
    assert soak_report.cpu_seconds(stat, ticks=100) == 3.0
    assert soak_report.cpu_seconds("garbage", ticks=100) is None


def test_metrics_keep_the_unlabelled_series_the_soak_follows() -> None:
    text = (
        "# HELP streamrec_events_scored_total Page views answered\n"
        "# TYPE streamrec_events_scored_total counter\n"
        "streamrec_events_scored_total 1234.0\n"
        "streamrec_events_scored_created 1.7e9\n"
        'streamrec_dead_letters_total{reason="decode"} 3.0\n'
        "streamrec_served_hit_at_10 0.25\n"
        "streamrec_snapshot_age_seconds 0.4\n"
    )
    assert soak_report.parse_metrics(text) == {
        "scored": 1234.0,
        "served_hit_at_10": 0.25,
        "snapshot_age_s": 0.4,
    }
    assert soak_report.parse_metrics("") == {}


def test_error_lines_are_errors_criticals_and_tracebacks_only() -> None:
    log = "\n".join(
        [
            "2026-12-06 11:52:01,123 WARNING streams.scorer a warning about ERROR handling",
            "2026-12-06 11:52:02,456 ERROR streams.trainer publish failed",
            "2026-12-06 11:52:03,789 CRITICAL streams.scorer giving up",
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in <module>',
            "trainer ready: model m (Covisit) ... ERROR in the name is no error line",
        ]
    )
    found = soak_report.error_lines(log)
    assert len(found) == 3
    assert found[0].endswith("publish failed")


# -- slope and checks -------------------------------------------------------------------------
def test_rss_slope_is_least_squares_per_hour() -> None:
    # 10 MB more every 10 minutes, with noise around the line: 60 MB/h.
    points = [(t, 100 + t / 60 + (1 if i % 2 else -1)) for i, t in enumerate(range(0, 3600, 60))]
    assert soak_report.slope_per_hour(points) == pytest.approx(60.0, abs=1.0)
    assert soak_report.slope_per_hour([(0, 1.0), (10, 2.0)]) is None
    assert soak_report.slope_per_hour([(5, 1.0), (5, 2.0), (5, 3.0)]) is None


def test_second_half_is_the_run_from_half_the_duration_on() -> None:
    samples = [sample(0), sample(50), sample(60), sample(100), sample(110, phase="drain")]
    assert [s["t"] for s in soak_report.second_half(samples, 100.0)] == [50, 60, 100]


def test_a_healthy_run_passes_every_check() -> None:
    summary = soak_report.evaluate(run_samples(), healthy_final(), LIMITS)
    assert set(verdicts(summary).values()) == {True}
    assert summary["passed"]
    assert summary["missing"] == 0
    assert summary["processes"]["scorer"]["rss_slope_mb_per_h"] == 0.0
    assert summary["processes"]["trainer"]["cpu_pct_first_half"] == 50.0
    assert summary["processes"]["trainer"]["cpu_pct_second_half"] == 50.0


def test_cpu_is_split_by_half_so_growing_work_shows() -> None:
    # A broker whose CPU per second doubles halfway: 0.2 s/s, then 0.4 s/s.
    samples = [
        sample(t, cpu=0.2 * t if t <= 600 else 120 + 0.4 * (t - 600)) for t in range(0, 1200, 10)
    ]
    figures = soak_report.evaluate(samples, healthy_final(), LIMITS)["processes"]["broker"]
    assert figures["cpu_pct_first_half"] == 20.0
    assert figures["cpu_pct_second_half"] == 40.0
    assert soak_report.cpu_pct([(0.0, 1.0)]) is None


@pytest.mark.parametrize(
    ("changes", "failed"),
    [
        ({"answered": 119_999}, "every page view answered once"),
        ({"duplicates": 3}, "every page view answered once"),
        ({"unexpected": 1}, "every page view answered once"),
        ({"learned_offsets": 119_000}, "events learned == produced"),
        ({"events_seen": 120_001}, "events learned == produced"),
        ({"error_lines": {"trainer": 0, "scorer": 2}}, "no error lines"),
        ({"exit_codes": {"produce": 130, "trainer": 0, "scorer": 75}}, "clean run and stop"),
        ({"exit_codes": {"produce": 1, "trainer": 0, "scorer": 0}}, "clean run and stop"),
        ({"drained": False}, "clean run and stop"),
        ({"died": "scorer exited with -6 at 300 s"}, "clean run and stop"),
    ],
)
def test_each_failure_fails_its_check_and_the_run(changes: dict[str, Any], failed: str) -> None:
    summary = soak_report.evaluate(run_samples(), healthy_final(**changes), LIMITS)
    bad = [name for name, ok in verdicts(summary).items() if ok is False]
    assert len(bad) == 1 and bad[0].startswith(failed)
    assert not summary["passed"]


def test_lag_is_judged_over_the_second_half_only() -> None:
    bound = int(LIMITS["rate"] * LIMITS["max_lag_s"])
    early = [sample(t, lag=bound * 10 if t < 600 else 10) for t in range(0, 1200, 10)]
    summary = soak_report.evaluate(early, healthy_final(), LIMITS)
    assert verdicts(summary)["lag bounded over the second half"] is True
    assert summary["max_lag_second_half"]["scorer"] == 10
    late = [sample(t, lag=bound + 1 if t == 900 else 10) for t in range(0, 1200, 10)]
    assert (
        verdicts(soak_report.evaluate(late, healthy_final(), LIMITS))[
            "lag bounded over the second half"
        ]
        is False
    )
    unread = [sample(t, lag=None) for t in range(0, 1200, 10)]  # every lag read failed
    assert (
        verdicts(soak_report.evaluate(unread, healthy_final(), LIMITS))[
            "lag bounded over the second half"
        ]
        is False
    )


def test_a_leak_fails_and_a_short_run_is_not_judged() -> None:
    # 60 MB/h over a 20 min run: over the limit.
    leak = [sample(t, rss=100 + t / 60) for t in range(0, 1200, 10)]
    summary = soak_report.evaluate(leak, healthy_final(), LIMITS)
    assert verdicts(summary)["RSS flat over the second half"] is False
    assert summary["processes"]["trainer"]["rss_slope_mb_per_h"] == pytest.approx(60.0)
    # The same growth over 3 minutes cannot be told from warm-up: reported, not judged.
    short = [sample(t, rss=100 + t / 60) for t in range(0, 180, 10)]
    summary = soak_report.evaluate(short, healthy_final(duration_s=180.0), LIMITS)
    assert verdicts(summary)["RSS flat over the second half"] is None
    assert summary["passed"]
    assert summary["processes"]["scorer"]["rss_slope_mb_per_h"] == pytest.approx(60.0)


# -- report -----------------------------------------------------------------------------------
def result_of(final: dict[str, Any]) -> dict[str, Any]:
    samples = run_samples()
    return {
        "services": "embedded",
        "machine": {"cores": 2, "load_avg_at_start": [0.5, 0.6, 0.7]},
        "config": {"minutes": 20.0, "rate": 100.0, "users": 500, "pages": 50, "sample_s": 10.0}
        | {"events": 127_000},
        "samples": samples,
        "final": final,
        "summary": soak_report.evaluate(samples, final, LIMITS),
    }


def test_markdown_has_a_row_per_process_and_per_check_and_the_verdict() -> None:
    text = soak_report.render_markdown(result_of(healthy_final(answered=119_990)))
    assert text.startswith("# Soak: 20 min at 100 page views/s (embedded services)")
    for name in soak_report.PROCESSES:
        assert f"| {name} | 100.0 | 100.0 | 100.0 | 0.0 | 50.0 | 50.0 |" in text
    assert "| every page view answered once | **FAIL** | 120,000 produced, 119,990" in text
    assert "10 missing" in text
    assert text.rstrip().endswith("Overall: **FAIL**.")
    assert "Overall: **pass**." in soak_report.render_markdown(result_of(healthy_final()))


def test_markdown_quotes_the_first_error_lines() -> None:
    final = healthy_final(error_lines={"trainer": 0, "scorer": 1})
    final["error_examples"] = {"trainer": [], "scorer": ["2026-12-06 12:00:00,1 ERROR x boom"]}
    text = soak_report.render_markdown(result_of(final))
    assert "First error lines of the scorer:\n\n    2026-12-06 12:00:00,1 ERROR x boom" in text
    assert "of the trainer" not in text
    assert "| no error lines in the trainer's and scorer's logs | **FAIL** |" in text


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "soak.png"
    assert soak_report.plot(result_of(healthy_final()), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- flags and services -----------------------------------------------------------------------
def test_flags_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_SOAK_MINUTES", "3")
    monkeypatch.setenv("STREAMREC_SOAK_USERS", "700")
    args = soak.parse_args(["--rate", "200"])
    assert (args.minutes, args.rate, args.users, args.pages) == (3.0, 200.0, 700, 5_000)
    assert soak.parse_args(["--minutes", "1.5"]).minutes == 1.5
    monkeypatch.delenv("STREAMREC_SOAK_MINUTES")
    assert soak.parse_args([]).minutes == 60.0


def test_service_pids_come_from_the_embedded_state_file(tmp_path: Path) -> None:
    assert soak.service_pids(tmp_path) == {"broker": None, "redis": None}
    state = {"kafka": {"pid": 11, "port": 1}, "redis": {"pid": 12, "port": 2}}
    (tmp_path / "services.json").write_text(json.dumps(state))
    assert soak.service_pids(tmp_path) == {"broker": 11, "redis": 12}
