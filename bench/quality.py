"""Prequential quality of every built-in model on the generator's default data.

Run ``python -m bench.quality``; uses the ``evaluate`` command itself (through click's
test runner) and writes ``bench/results/models_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from online_model.registry import DEFAULT_MODEL, MODELS
from streams.cli import evaluate as evaluate_cli
from streams.cli import generate as generate_cli

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m bench.quality",
        description="Prequential hit@10/MRR@10 of every built-in model on the generator's "
        "default data; writes bench/results/models_quality.json (about 2 minutes).",
    ).parse_args()
    runner = CliRunner()
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "views.csv")
        result = runner.invoke(generate_cli.command, ["--output", data])
        assert result.exit_code == 0, result.output
        for name in sorted(MODELS):
            result = runner.invoke(evaluate_cli.command, ["--input", data, "--model", name])
            assert result.exit_code == 0, result.output
            report = json.loads(result.stdout)
            reports.append(report)
            print(
                f"{name}: hit@10={report['hit@10']:.4f} mrr@10={report['mrr@10']:.4f}",
                file=sys.stderr,
            )
    out = {
        "data": "streamrec generate defaults (2,000 users, 1,000 pages, 100,000 events, seed 42)",
        "default_model": DEFAULT_MODEL,
        "results": reports,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "models_quality.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
