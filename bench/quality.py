"""Prequential quality of every built-in model, and of the references, on one page-view log.

Run ``python -m bench.quality``; uses the ``evaluate`` command itself (through click's
test runner) on the generator's default data and writes
``bench/results/models_quality.json``. ``--input FILE`` judges them on another log
instead, e.g. the real purchase log the bench ships (``--input
bench/data/online-retail/online_retail.csv.gz``) or an export of your own traffic, and
writes ``bench/results/models_quality_<name>.json`` (or ``--output``). ``--references``
adds the reference recommenders of :mod:`bench.references` (``--model
bench.references:SequentialRules`` etc.).
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

from .references import REFERENCES

RESULTS = Path(__file__).parent / "results"


def evaluate_all(data: str, references: bool) -> list[dict]:
    """``streamrec evaluate`` reports of every built-in (and reference) on ``data``."""
    runner = CliRunner()
    models = sorted(MODELS)
    if references:
        models += [f"{cls.__module__}:{cls.__name__}" for cls in REFERENCES.values()]
    reports = []
    for name in models:
        result = runner.invoke(evaluate_cli.command, ["--input", data, "--model", name])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        reports.append(report)
        print(
            f"{name}: hit@10={report['hit@10']:.4f} mrr@10={report['mrr@10']:.4f}",
            file=sys.stderr,
        )
    return reports


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality",
        description="Prequential hit@10/MRR@10 of every built-in model on the generator's "
        "default data (about 2 minutes) or on --input FILE; writes "
        "bench/results/models_quality[_NAME].json.",
    )
    parser.add_argument("--input", help="page-view log (CSV/JSONL, may be .gz) to judge on")
    parser.add_argument("--references", action="store_true", help="add the references")
    parser.add_argument("--output", type=Path, help="result file (default: in bench/results)")
    args = parser.parse_args(argv)
    if args.input:
        name = Path(args.input).name.split(".")[0]
        reports = evaluate_all(args.input, args.references)
        data = args.input
        output = args.output or RESULTS / f"models_quality_{name}.json"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            views = str(Path(tmp) / "views.csv")
            result = CliRunner().invoke(generate_cli.command, ["--output", views])
            assert result.exit_code == 0, result.output
            reports = evaluate_all(views, args.references)
        data = "streamrec generate defaults (2,000 users, 1,000 pages, 100,000 events, seed 42)"
        output = args.output or RESULTS / "models_quality.json"
    out = {"data": data, "default_model": DEFAULT_MODEL, "results": reports}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
