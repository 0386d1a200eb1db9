"""The reader in docs/model-format.md works without streamrec and agrees with the model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from online_model.data.generate import generate
from online_model.models.covisit import Covisitation
from online_model.persist.snapshot import Snapshot, SnapshotMeta, dump_snapshot

DOC = Path(__file__).resolve().parents[2] / "docs" / "model-format.md"
MARKER = "<!-- model-format-example -->"
KEY = "doc-example-key"

# Run the example with streamrec's packages unimportable: it must need only the format.
_LAUNCHER = """
import runpy, sys
for name in ("online_model", "streams"):
    sys.modules[name] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def example_source() -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)\n```", text, re.DOTALL)
    assert match, f"no python block after {MARKER} in {DOC}"
    return match.group(1)


def run_example(script: Path, snapshot: Path, key: str, history: list[str]) -> list[list]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(script), str(snapshot), key, *history],
        cwd=script.parent,  # not the repository: nothing of streamrec on the path
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_the_documented_reader_serves_the_models_top10(tmp_path: Path) -> None:
    assert "online_model" not in example_source() and "streams" not in example_source()
    rows = generate(n_users=300, n_pages=400, n_events=20_000, seed=5).rows()
    model = Covisitation()
    for user, page, ts, _ in rows:
        model.learn_one(user, page, x={"ts": ts})
    snapshot = tmp_path / "model.bin"
    snapshot.write_bytes(dump_snapshot(Snapshot(SnapshotMeta("doc"), model), KEY.encode()))
    script = tmp_path / "reader.py"
    script.write_text(example_source(), encoding="utf-8")

    histories = {}
    for user, page, _, _ in rows[-3000:]:
        histories.setdefault(user, []).append(page)
    cases = [h[-8:] for h in list(histories.values())[:5]]
    cases += [[], ["a-page-nobody-saw"], [rows[-1][1]] * 3]
    for history in cases:
        expected = model.recommend("someone", 10, history=history, exclude=set(history))
        got = run_example(script, snapshot, KEY, history)
        assert [tuple(pair) for pair in got] == [(p, s) for p, s in expected], history
        assert len(got) == 10


def test_the_documented_reader_refuses_a_wrong_key(tmp_path: Path) -> None:
    model = Covisitation()
    model.learn_one("u", "p")
    snapshot = tmp_path / "model.bin"
    snapshot.write_bytes(dump_snapshot(Snapshot(SnapshotMeta("doc"), model), KEY.encode()))
    script = tmp_path / "reader.py"
    script.write_text(example_source(), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(script), str(snapshot), "wrong", "p"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0 and "MAC does not match" in run.stderr
