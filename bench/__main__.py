"""``python -m bench``: the pipeline benchmarks, written to ``bench/results/``.

The benches live in the repository's ``bench/`` directory, not in the installed package:
run them from a source checkout (``make bench`` = ``python -m bench --quick``).
"""

from __future__ import annotations

from pathlib import Path

import click

SECTIONS = ("throughput", "latency", "freshness", "trainer", "engine")


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--quick",
    is_flag=True,
    default=False,
    envvar="STREAMREC_BENCH_QUICK",
    show_envvar=True,
    help="Smaller runs: about 8 minutes on 2 cores.",
)
@click.option(
    "--only",
    default="",
    envvar="STREAMREC_BENCH_ONLY",
    show_envvar=True,
    help=f"Comma-separated sections to run ({', '.join(SECTIONS)}); "
    "the others keep their last results in the report. [default: all]",
)
@click.option(
    "--runs",
    type=int,
    default=None,
    envvar="STREAMREC_BENCH_RUNS",
    show_envvar=True,
    help="Runs per figure (the median is reported). [default: 3, full: 5 for throughput]",
)
@click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="STREAMREC_BENCH_RESULTS",
    show_envvar=True,
    help="Where the JSON, REPORT.md and PNG go. [default: bench/results]",
)
@click.option(
    "--snapshot-interval",
    type=click.FloatRange(min=0.01),
    default=0.5,
    show_default=True,
    envvar="STREAMREC_BENCH_SNAPSHOT_INTERVAL",
    show_envvar=True,
    help="The trainer's snapshot interval in the freshness bench, seconds.",
)
def command(
    quick: bool, only: str, runs: int | None, results_dir: Path | None, snapshot_interval: float
) -> None:
    """Benchmark the scorer, latency, freshness, trainer, replay and memory.

    Runs on the embedded broker and Redis (started on free ports, stopped after, also on
    SIGTERM or Ctrl-C) unless KAFKA_BOOTSTRAP_SERVERS and REDIS_URL are set. Writes
    bench/results/<section>.json, bench/results/REPORT.md and bench/results/pipeline.png.
    """
    sections = [s.strip() for s in only.split(",") if s.strip()] or list(SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise click.BadParameter(
            f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}", param_hint="--only"
        )
    from bench.harness import stopped_by_signals
    from bench.run import run_benches

    # SIGTERM (a `timeout` around `make bench`) or Ctrl-C: the services and children
    # the benches started are stopped on the way out, not left running.
    with stopped_by_signals():
        report = run_benches(
            sections,
            quick=quick,
            runs=runs,
            results_dir=results_dir,
            snapshot_interval=snapshot_interval,
        )
    click.echo(report)


if __name__ == "__main__":
    command(prog_name="python -m bench")
