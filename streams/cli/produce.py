"""``streamrec produce``: a CSV/JSONL log of page views into the page-views topic."""

from __future__ import annotations

import signal
from typing import Any

import click

from online_model.data.events_file import read_events
from streams.errors import ProducerFailed
from streams.io.producer import ReliableProducer
from streams.io.topics import ensure_topics
from streams.ops.ingest import produce_log
from streams.settings import Settings


@click.command("produce")
@click.option(
    "--input",
    "input_path",
    required=True,
    envvar="STREAMREC_PRODUCE_INPUT",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV (header user_id,page_id,ts_ms[,session_id]) or .jsonl with those fields.",
)
@click.option(
    "--topic",
    default=None,
    envvar="STREAMREC_TOPIC_PAGE_VIEWS",
    show_envvar=True,
    help="Target topic. [default: page-views]",
)
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    envvar="STREAMREC_PRODUCE_RATE",
    show_envvar=True,
    help="Page views per second; 0 sends as fast as the broker takes.",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    envvar="STREAMREC_SKIP_BAD",
    show_envvar=True,
    help="Skip and count malformed rows instead of stopping at the first.",
)
def command(input_path: str, topic: str | None, rate: float, skip_bad: bool) -> None:
    """Produce page views from a file, keyed by user_id, as Avro; report deliveries."""
    settings = Settings.from_env()
    target = topic or settings.topic_page_views
    log = read_events(input_path, skip_bad=skip_bad)  # a bad row stops here, nothing sent
    ensure_topics(settings, [target])
    producer = ReliableProducer(settings)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with click.progressbar(
            length=len(log.events),
            label=f"producing to {target}",
            file=click.get_text_stream("stderr"),
        ) as bar:
            report = produce_log(
                settings, log.events, target, rate, on_progress=bar.update, producer=producer
            )
    except (KeyboardInterrupt, ProducerFailed) as exc:
        # Say what is known instead of dying with a traceback: the rows after the last
        # delivered one may or may not be on the topic.
        report = producer.flush(2.0)
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped ({exc})"
        click.echo(
            f"{what}: delivered {report.delivered} of {report.sent} page views "
            f"sent to {target} ({len(log.events)} in the file); {report.failed} "
            f"failed {report.errors}; {report.pending} not confirmed",
            err=True,
        )
        raise SystemExit(130 if isinstance(exc, KeyboardInterrupt) else 1) from None
    click.echo(
        f"delivered {report.delivered} of {report.sent} page views to {target}"
        + (f"; {report.failed} FAILED {report.errors}" if report.failed else "")
        + (f"; skipped {log.n_bad} bad rows (lines {log.bad_lines[:10]})" if log.n_bad else "")
    )
    if report.failed or report.pending:
        raise SystemExit(1)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt
