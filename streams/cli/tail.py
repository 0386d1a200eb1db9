"""``streamrec tail``: the recommendations topic as JSON lines, from now or its beginning."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from streams.cli import _signals
from streams.cli.options import Count, setting_option
from streams.io.tail import RecommendationTail
from streams.io.topics import ensure_topics
from streams.services.probes import require
from streams.settings import Settings

#: Seconds one poll may block: how late a Ctrl-C, --timeout or --max is noticed at most.
POLL_S = 0.2


@_signals.handles_signals
@click.command("tail")
@setting_option(
    "--from-beginning",
    setting="tail_from_beginning",
    is_flag=True,
    default=False,
    help="Print every record the topic holds, then follow it. [default: only records "
    "written after tail starts]",
)
@setting_option(
    "--user",
    setting="tail_user",
    default=None,
    metavar="USER",
    help="Only this user's records (the record key).",
)
@setting_option(
    "--max",
    "max_records",
    setting="tail_max",
    type=Count(1),
    default=None,
    metavar="N",
    help="Stop after printing N records.",
)
@setting_option(
    "--timeout",
    setting="tail_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop after this many seconds; exit 1 if --max was given and not reached.",
)
@setting_option(
    "--topic",
    setting="topic_recommendations",
    default=None,
    help="Topic to read. [default: recommendations]",
)
def command(
    from_beginning: bool,
    user: str | None,
    max_records: int | None,
    timeout: float | None,
    topic: str | None,
) -> None:
    """Print recommendations as they arrive, one JSON object per line on stdout.

    Every partition is assigned (no consumer group, nothing committed) and each record
    is decoded as the current Recommendation schema. Runs until --max, --timeout or
    Ctrl-C (a line on stderr, exit 130; 143 for SIGTERM). Once it reads, it says so on
    stderr (`tailing ...`): records written from then on are printed.
    """
    _signals.defer()  # already so when run as `streamrec`; here for in-process callers
    try:
        _tail(from_beginning, user, max_records, timeout, topic)
    finally:
        _signals.release()


def _tail(
    from_beginning: bool,
    user: str | None,
    max_records: int | None,
    timeout: float | None,
    topic: str | None,
) -> None:
    settings = Settings.from_env()
    target = topic or settings.topic_recommendations
    require(settings, kafka=True)
    ensure_topics(settings, [target])
    deadline = None if timeout is None else time.monotonic() + timeout
    tail = RecommendationTail(
        settings,
        target,
        from_beginning=from_beginning,
        user=user,
        on_bad=lambda message: click.echo(f"warning: {message}", err=True),
    )
    try:
        tail.start()
        where = "from the beginning" if from_beginning else "from now"
        who = f", user {user}" if user is not None else ""
        click.echo(f"tailing {target} ({len(tail.partitions)} partitions) {where}{who}", err=True)
        printed = 0
        while max_records is None or printed < max_records:
            signum = _signals.received()
            if signum is not None:
                name = _signals.name(signum)
                click.echo(f"interrupted by {name}: {_summary(printed, tail)}", err=True)
                raise SystemExit(_signals.exit_code(signum))
            if deadline is not None and time.monotonic() >= deadline:
                click.echo(
                    f"stopped after --timeout {timeout:g} s: {_summary(printed, tail)}", err=True
                )
                raise SystemExit(1 if max_records is not None else 0)
            for record in tail.poll(POLL_S):
                _print(record)
                printed += 1
                if printed == max_records:
                    break
        click.echo(f"stopped after --max {max_records}: {_summary(printed, tail)}", err=True)
    finally:
        tail.close()


def _print(record: dict[str, object]) -> None:
    try:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `streamrec tail | head`: the reader has what it wanted
        # Python flushes stdout again at exit: point it at nothing so that is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None


def _summary(printed: int, tail: RecommendationTail) -> str:
    counts = tail.counts
    text = f"{printed} records printed, {counts.read} read"
    if counts.before_start:
        text += f", {counts.before_start} written before the start skipped"
    if counts.undecodable:
        text += f", {counts.undecodable} undecodable skipped"
    return text
