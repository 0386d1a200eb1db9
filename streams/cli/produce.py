"""``streamrec produce``: a CSV/JSONL log of page views into the page-views topic."""

from __future__ import annotations

from typing import NoReturn

import click

from online_model.data.events_file import read_events
from streams.cli import _signals
from streams.cli.options import setting_option
from streams.errors import ProducerFailed
from streams.io.ingest import produce_log
from streams.io.producer import DeliveryReport, ReliableProducer
from streams.io.topics import ensure_topics
from streams.progress import Progress
from streams.services.probes import require
from streams.settings import Settings


@_signals.handles_signals
@click.command("produce")
@setting_option(
    "--input",
    "input_path",
    required=True,
    setting="produce_input",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV (header user_id,page_id,ts_ms[,session_id]) or .jsonl with those fields.",
)
@setting_option(
    "--topic",
    default=None,
    setting="topic_page_views",
    help="Target topic. [default: page-views]",
)
@setting_option(
    "--rate",
    default=0.0,
    show_default=True,
    setting="produce_rate",
    help="Page views per second; 0 sends as fast as the broker takes.",
)
@setting_option(
    "--skip-bad",
    is_flag=True,
    setting="skip_bad",
    help="Skip and count malformed rows instead of stopping at the first.",
)
def command(input_path: str, topic: str | None, rate: float, skip_bad: bool) -> None:
    """Produce page views from a file, keyed by user_id, as Avro; report deliveries.

    Ctrl-C (exit 130) or SIGTERM (exit 143) stops sending; what was delivered, failed
    and not confirmed is reported in any case.
    """
    _signals.defer()  # already so when run as `streamrec`; here for in-process callers
    try:
        _produce(input_path, topic, rate, skip_bad)
    finally:
        _signals.release()


def _produce(input_path: str, topic: str | None, rate: float, skip_bad: bool) -> None:
    settings = Settings.from_env()
    target = topic or settings.topic_page_views
    producer: ReliableProducer | None = None

    def stop_if_asked() -> None:
        # Checked between steps that each take at most a few seconds.
        if _signals.received() is not None:
            _report_interrupted(producer, target, in_file)

    log = read_events(input_path, skip_bad=skip_bad)  # a bad row stops here, nothing sent
    in_file = len(log.events)  # a signal that came meanwhile is seen just below
    stop_if_asked()
    require(settings, kafka=True)
    stop_if_asked()
    ensure_topics(settings, [target])
    stop_if_asked()
    producer = ReliableProducer(settings, stop=_signals.received)
    try:
        with Progress(f"producing to {target}", len(log.events), "page views") as bar:
            report = produce_log(
                settings,
                log.events,
                target,
                rate,
                on_progress=bar.update,
                producer=producer,
                stop=_signals.received,
            )
    except ProducerFailed as exc:
        # Say what is known instead of dying with a traceback: the rows after the last
        # delivered one may or may not be on the topic.
        report = producer.flush(2.0, stop=_signals.received)
        click.echo(f"stopped ({exc}): {_counts(report, target, in_file)}", err=True)
        raise SystemExit(1) from None
    stop_if_asked()
    click.echo(
        f"delivered {report.delivered} of {report.sent} page views to {target}"
        + (f"; {report.failed} FAILED {report.errors}" if report.failed else "")
        + (f"; skipped {log.n_bad} bad rows (lines {log.bad_lines[:10]})" if log.n_bad else "")
    )
    if report.failed or report.pending:
        raise SystemExit(1)


def _counts(report: DeliveryReport, target: str, in_file: int) -> str:
    return (
        f"delivered {report.delivered} of {report.sent} page views sent to {target} "
        f"({in_file} in the file); {report.failed} failed {report.errors}; "
        f"{report.pending} not confirmed"
    )


def _report_interrupted(producer: ReliableProducer | None, target: str, in_file: int) -> NoReturn:
    """Print what is known and exit 128 + the signal number (130 Ctrl-C, 143 SIGTERM)."""
    signum = _signals.received()
    assert signum is not None
    report = DeliveryReport()
    if producer is not None:
        # Messages in flight get a short grace; a second Ctrl-C ends it at once.
        report = producer.flush(2.0, stop=lambda: _signals.count() > 1)
    click.echo(
        f"interrupted by {_signals.name(signum)}: {_counts(report, target, in_file)}", err=True
    )
    raise SystemExit(_signals.exit_code(signum))
