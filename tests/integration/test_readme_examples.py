"""The README's commands (and the replay example of docs/operations.md) run as written.

The replay example once asked for May 2024 while `streamrec generate` writes November
2023: it read nothing and the gate judged 0.0000 against 0.0000. These tests take the
lines out of README.md and docs/operations.md themselves, so the examples and the code
cannot drift apart again.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
OPERATIONS = ROOT / "docs" / "operations.md"


def section(title: str, page: Path = README) -> str:
    text = page.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def commands(text: str, prefix: str) -> list[list[str]]:
    """The ``streamrec <prefix> ...`` lines of the sh blocks of ``text`` (continuations
    joined, comments dropped), as argument lists."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            args = shlex.split(line, comments=True)
            if args[:2] == ["streamrec", prefix]:
                found.append(args)
    return found


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    assert args[0] == "streamrec"
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_replay_example_works_on_what_the_readme_generates_and_produces(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    running = section("Running it")
    [generate] = commands(running, "generate")
    [produce] = commands(running, "produce")
    [replay] = commands(section("Replay: rebuild a model from the log", OPERATIONS), "replay")

    done = run(generate, settings_env, tmp_path)
    assert done.returncode == 0, done.stderr
    # As written, but without --rate: the same rows, without waiting 100 s for them.
    if "--rate" in produce:
        at = produce.index("--rate")
        produce = produce[:at] + produce[at + 2 :]
    done = run(produce, settings_env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    done = run(replay, settings_env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["metrics"]["n_events"] > 10_000, out["metrics"]
    assert out["gate"]["passed"] is True
    assert out["publish"] == "candidate" and out["version"] is not None


def test_a_range_without_page_views_says_so_and_is_not_judged(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    views = tmp_path / "views.csv"
    views.write_text(
        "user_id,page_id,ts_ms\n"
        + "".join(f"u{i % 7},p{i % 11},{1_700_000_000_000 + i * 1000}\n" for i in range(300))
    )
    done = run(["streamrec", "produce", "--input", str(views)], settings_env, tmp_path)
    assert done.returncode == 0, done.stderr

    done = run(
        [
            "streamrec",
            "replay",
            "--from",
            "2024-05-01T00:00:00Z",
            "--to",
            "2024-05-08T00:00:00Z",
            "--gate",
            "hit@10",
            "--publish",
            "candidate",
            "--idle-timeout",
            "1.5s",
        ],
        settings_env,
        tmp_path,
    )
    assert done.returncode == 4, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert settings.topic_page_views in errors[0]
    assert "[2024-05-01T00:00:00Z, 2024-05-08T00:00:00Z)" in errors[0]
    # where the data is, so the user can fix the range
    assert "2023-11-14T22:13:20Z .. 2023-11-14T22:18:19Z" in errors[0]
    assert "beat" not in done.stderr and done.stdout == ""
