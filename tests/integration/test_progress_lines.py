"""Long commands whose stderr is a file say where they are; the trainer says when it is ready.

A progress bar only draws on a terminal: `produce --rate 1000` with its output in a log
file used to say nothing for 100 s. Off a terminal, a line comes every
``STREAMREC_PROGRESS_INTERVAL`` seconds (10 by default; shortened here).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI with stdout and stderr in files (not terminals), as in a log."""
    with open(cwd / "out.txt", "w") as out, open(cwd / "err.txt", "w") as err:
        code = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env={**env, "STREAMREC_PROGRESS_INTERVAL": "200ms"},
            cwd=cwd,
            stdout=out,
            stderr=err,
            timeout=300,
        ).returncode
    return subprocess.CompletedProcess(
        args, code, (cwd / "out.txt").read_text(), (cwd / "err.txt").read_text()
    )


def progress(stderr: str, label: str) -> list[int]:
    """The counts of the progress lines of ``label``, in order."""
    pattern = rf"^{re.escape(label)}: ([\d,]+)(?: of [\d,]+)? .*? after \d+ s \([\d,]+/s\)$"
    return [int(m.group(1).replace(",", "")) for m in re.finditer(pattern, stderr, re.M)]


def write_views(path: Path, n: int) -> None:
    path.write_text(
        "user_id,page_id,ts_ms\n"
        + "".join(f"u{i % 50},p{(i * 7) % 40},{1_700_000_000_000 + i * 1000}\n" for i in range(n))
    )


def test_produce_and_replay_print_progress_lines_into_a_file(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    write_views(tmp_path / "views.csv", 2000)
    done = run(["produce", "--input", "views.csv", "--rate", "1000"], settings_env, tmp_path)
    assert done.returncode == 0, done.stderr
    counts = progress(done.stderr, f"producing to {settings.topic_page_views}")
    assert len(counts) >= 3, done.stderr  # ~2 s at 1000/s, a line every 0.2 s
    assert counts == sorted(counts) and counts[-1] > counts[0]
    assert "of 2,000 page views" in done.stderr

    done = run(["replay", "--idle-timeout", "1s"], settings_env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert progress(done.stderr, f"reading {settings.topic_page_views}"), done.stderr


def test_evaluate_prints_progress_lines_into_a_file(tmp_path: Path) -> None:
    write_views(tmp_path / "views.csv", 30_000)
    env = {**os.environ}
    done = run(["evaluate", "--input", "views.csv", "--model", "covisit"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    counts = progress(done.stderr, "evaluating covisit")
    assert counts and counts == sorted(counts), done.stderr


def test_batch_score_prints_progress_lines_into_a_file(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    users = tmp_path / "users.txt"
    users.write_text("".join(f"user{i}\n" for i in range(30_000)))
    env = {**settings_env, "STREAMREC_PROGRESS_INTERVAL": "50ms"}
    with open(tmp_path / "err.txt", "w") as err:
        code = subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "batch-score",
                "--users",
                str(users),
                "--output",
                str(tmp_path / "recs.jsonl"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=300,
        ).returncode
    stderr = (tmp_path / "err.txt").read_text()
    assert code == 0, stderr
    assert progress(stderr, "scoring users"), stderr


def test_the_trainer_says_in_one_line_when_it_is_ready(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    trainer = ChildProcess.streamrec(["trainer"], settings_env, tmp_path / "trainer.log")
    try:
        log = wait_for(
            lambda: "trainer ready: " in trainer.output() and trainer.output(), 60, "ready"
        )
    finally:
        code = trainer.stop()
    assert code == 0, trainer.output()[-3000:]
    [line] = [x for x in log.splitlines() if x.startswith("trainer ready: ")]
    assert f"model {settings.model_name} (Covisitation)" in line
    assert "no snapshot yet" in line
    assert settings.topic_page_views in line and settings.bootstrap_servers in line
