"""The fuzz targets (tests/fuzz/, docs/fuzzing.md): a short run of each, and every
committed finding replayed.

The short run gives each target a few seconds of libFuzzer from its committed seed
corpus (new inputs go to a temporary folder, never into the repository): enough to
catch a parser change that crashes on inputs near the seeds, and to keep the harnesses
working. The long runs are documented in docs/fuzzing.md.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.harness import CORPUS, REGRESSIONS

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ["avro_codec", "events_file", "pages_file", "snapshot", "rest_params"]
#: Seconds of fuzzing per target in the short run (5 targets on 2 workers: ~17 s in all).
SHORT_RUN_S = 3


def findings() -> list[tuple[str, Path]]:
    return [(d.name, f) for d in sorted(REGRESSIONS.iterdir()) for f in sorted(d.iterdir())]


@pytest.mark.fuzz
@pytest.mark.parametrize("target", TARGETS)
def test_short_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    seeds = CORPUS / target
    assert any(seeds.iterdir()), f"no seed corpus in {seeds}"
    args = [
        sys.executable,
        "-m",
        f"tests.fuzz.fuzz_{target}",
        f"-max_total_time={SHORT_RUN_S}",
        "-timeout=10",
        f"-artifact_prefix={tmp_path}/",
        str(tmp_path / "corpus"),
        str(seeds),
    ]
    (tmp_path / "corpus").mkdir()
    run = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name != "corpus")
    assert run.returncode == 0 and not crashes, run.stderr[-4000:]
    assert "Done " in run.stderr, run.stderr[-2000:]


@pytest.mark.parametrize(
    ("target", "path"), findings(), ids=[f"{t}/{p.name}" for t, p in findings()]
)
def test_each_finding_is_now_refused_as_documented(target: str, path: Path) -> None:
    """A crash the fuzzer found, committed as its input: only an allowed error now."""
    module = importlib.import_module(f"tests.fuzz.fuzz_{target}")
    module.run(path.read_bytes())


@pytest.mark.parametrize("target", TARGETS)
def test_every_seed_is_read_or_refused_as_documented(target: str) -> None:
    module = importlib.import_module(f"tests.fuzz.fuzz_{target}")
    for path in sorted((CORPUS / target).iterdir()):
        module.run(path.read_bytes())
