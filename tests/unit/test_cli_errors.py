"""Every mistake a user can make on the command line ends as ``error: ...``, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def streamrec(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["evaluate", "--input", "/nonexistent/views.csv"], "cannot read /nonexistent/views.csv"),
        (["evaluate", "--input", "x.csv", "--model", "nope"], "unknown model 'nope'"),
        (["evaluate", "--input", "x.csv", "--k", "5_0"], "'5_0' is not a whole number"),
        (["evaluate", "--input", "x.csv", "--k", "\uff15"], "is not a whole number"),
        (["generate", "--output", "/nonexistent/g.csv"], "No such file or directory"),
        (["generate", "--output", "g.csv", "--users", "0"], "0 is not in the range 1"),
        (["no-such-command"], "No such command"),
        (
            ["scorer", "--k", "500"],
            "500 is not in the range 1 to 100",
        ),  # REST's cap is the one limit
        (["scorer", "--web-port", "99999"], "web_port must be a TCP port"),
        (["models", "show", "x1"], "'x1' is not a whole number"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    result = streamrec(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr


def test_renamed_variables_still_work_with_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "g.csv"
    result = streamrec(
        "generate", "--pages", "30", "--events", "200", env={"STREAMREC_OUTPUT": str(out)}
    )
    assert result.returncode == 0, result.stderr
    assert "STREAMREC_OUTPUT is deprecated; set STREAMREC_GENERATE_OUTPUT" in result.stderr
    assert out.read_text().count("\n") == 201
    # the documented name of model parameters works for evaluate too
    bad = streamrec(
        "evaluate", "--input", str(out), env={"STREAMREC_MODEL_PARAMS": "no_such_param=1"}
    )
    assert bad.returncode == 2 and "no_such_param" in bad.stderr, bad.stderr


def test_a_busy_web_port_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        result = streamrec("scorer", "--web-port", str(port))
    assert result.returncode == 2, result.stderr
    assert f"error: port {port} is in use" in result.stderr
    assert "Traceback" not in result.stderr
