"""Durations as typed (``6h``, ``30m``), the options that take them, and the ``--every`` loop."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.cli._repeat import repeat
from streams.cli.options import Duration
from streams.durations import format_duration, parse_duration
from streams.settings import Settings


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("30m", 1800.0),
        ("6h", 21600.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        (" 2M ", 120.0),
        ("0", 0.0),
    ],
)
def test_durations_with_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("6", "give a unit, e.g. 6s, 6m or 6h"),
        ("0.5", "give a unit, e.g. 0.5s, 0.5m or 0.5h"),
        ("soon", "not a duration"),
        ("", "not a duration"),
        ("-5m", "not a duration"),
        ("5w", "not a duration"),
        ("1h 30m", "not a duration"),
        ("1m1m", "a unit appears twice"),
    ],
)
def test_bare_numbers_and_garbage_are_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.5, 0.05, 1.0, 90.0, 5400.0, 21600.0, 86400.0, 2.5])
def test_format_reads_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def _probe(zero: bool = False) -> click.Command:
    @click.command()
    @click.option("--every", type=Duration(zero=zero), envvar="PROBE_EVERY")
    def probe(every: float | None) -> None:
        click.echo(repr(every))

    return probe


def test_the_option_names_itself_or_its_variable_in_the_error() -> None:
    runner = CliRunner()
    assert runner.invoke(_probe(), ["--every", "6h"]).output == "21600.0\n"
    typed = runner.invoke(_probe(), ["--every", "6"])
    assert typed.exit_code == 2 and "--every 6: give a unit, e.g. 6s, 6m or 6h" in typed.output
    # A variable's value is checked where every variable is read (streams/settings.py).
    from_env = runner.invoke(main, ["retrain"], env={"STREAMREC_RETRAIN_EVERY": "6"})
    assert from_env.exit_code == 2
    assert "STREAMREC_RETRAIN_EVERY='6' is not valid: give a unit" in from_env.output
    assert "--every 0: must be longer than 0" in runner.invoke(_probe(), ["--every", "0"]).output
    assert runner.invoke(_probe(zero=True), ["--every", "0"]).output == "0.0\n"


@pytest.mark.parametrize(
    "args",
    [
        ["retrain", "--every", "6"],
        ["replay", "--idle-timeout", "5"],
        ["replay", "--lateness", "60"],
        ["trainer", "--snapshot-interval", "0.5"],
        ["trainer", "--lease-ttl", "10"],
        ["up", "--timeout", "30"],
        ["demo", "--duration", "30"],
        ["--progress-interval", "10", "status"],
    ],
)
def test_every_unitless_duration_option_refuses_a_bare_number(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert ": give a unit, e.g." in result.output


def test_unitless_duration_settings_take_a_unit_and_round_trip() -> None:
    told = Settings.from_env(
        {"STREAMREC_SNAPSHOT_INTERVAL": "250ms", "STREAMREC_MODEL_POLL_INTERVAL": "2s"}
    )
    assert (told.snapshot_interval, told.model_poll_interval) == (0.25, 2.0)
    with pytest.raises(Exception, match=r"STREAMREC_SNAPSHOT_INTERVAL='0\.5'.*give a unit"):
        Settings.from_env({"STREAMREC_SNAPSHOT_INTERVAL": "0.5"})
    # Seconds stay plain numbers where the name says so.
    assert Settings.from_env({"STREAMREC_STALL_TIMEOUT_S": "12"}).stall_timeout_s == 12.0
    # What a parent hands its children reads back the same.
    child = Settings.from_env(Settings(snapshot_interval=0.05).to_env())
    assert child.snapshot_interval == 0.05


def test_the_loop_says_when_the_next_run_starts_and_ctrl_c_exits_130(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs: list[int] = []
    clock = iter([1_796_565_600.0, 1_796_565_630.0])  # 2026-12-06T14:00:00Z, 30 s later

    def wait(seconds: float) -> bool:
        assert seconds == 6 * 3600 - 30  # start to start
        raise KeyboardInterrupt  # Ctrl-C while waiting

    code = repeat(lambda: runs.append(1), 6 * 3600, wait=wait, now=lambda: next(clock))
    err = capsys.readouterr().err
    assert runs == [1] and code == 130
    assert "next run at 2026-12-06T20:00:00Z (in 6h)" in err
    assert err.splitlines()[-1] == "stopped by SIGINT; no run in progress"


def test_ctrl_c_during_a_run_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    def run() -> None:
        raise KeyboardInterrupt

    assert repeat(run, 60.0) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "stopped by SIGINT; run 1 interrupted"


def test_sigterm_ends_the_wait_and_exits_143(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code = repeat(lambda: None, 3600.0)
    finally:
        timer.cancel()
    assert code == 143
    assert capsys.readouterr().err.splitlines()[-1] == "stopped by SIGTERM; no run in progress"
    assert signal.getsignal(signal.SIGTERM) == before  # given back


def test_a_run_longer_than_the_period_is_followed_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    clock = iter([0.0, 120.0, 120.0, 130.0])
    runs: list[int] = []

    def wait(seconds: float) -> bool:
        assert seconds == 50.0
        return True  # stopped

    repeat(lambda: runs.append(1), 60.0, wait=wait, now=lambda: next(clock))
    err = capsys.readouterr().err
    assert runs == [1, 1]
    assert "run 1 took longer than --every (1m); next run starts now" in err
    assert "(in 50s)" in err
