"""``streamrec catalog``: load pages into the catalog, hide and show them, look them up.

The catalog is the compacted ``pages`` topic; scorers follow it and stop serving a
hidden, expired or deleted page as soon as they read its record. ``show`` and ``list``
read the topic to its end as a scorer does when it starts.
"""

from __future__ import annotations

import dataclasses
import json
import time

import click

from online_model.errors import InputError
from streams.catalog.follower import read_catalog
from streams.catalog.lookup import UnknownPage, find_page, list_pages, page_line
from streams.catalog.pages_file import read_pages
from streams.catalog.publish import publish_pages, set_available
from streams.cli.options import json_option, pages_topic_option
from streams.io.topics import ensure_topics
from streams.services.probes import require
from streams.settings import Settings


def _settings(pages_topic: str | None) -> Settings:
    settings = Settings.from_env()
    if pages_topic:
        settings = dataclasses.replace(settings, topic_pages=pages_topic)
    return settings


@click.group("catalog")
def command() -> None:
    """The page catalog: which pages may be recommended."""


@command.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="File format. [default: from the name: .jsonl/.json/.ndjson are JSON lines, else CSV]",
)
@pages_topic_option()
@json_option("catalog_json")
def load(file: str, fmt: str | None, pages_topic: str | None, as_json: bool) -> None:
    """Publish every page of FILE (CSV with a page_id header, or JSONL) to the catalog.

    Columns: page_id, available (true/false), categories (a|b), published_at and
    expires_at (epoch ms or ISO-8601), title, url; other columns become attributes. A bad
    row stops the load before anything is sent.
    """
    pages = read_pages(file, fmt)  # every row checked before anything is sent
    settings = _settings(pages_topic)
    require(settings, kafka=True)
    report = publish_pages(settings, pages)
    hidden = sum(1 for page in pages if not page["available"])
    summary = {"pages": len(pages), "hidden": hidden, "topic": settings.topic_pages}
    if as_json:
        click.echo(json.dumps({**summary, "acknowledged": report.delivered}))
    else:
        click.echo(
            f"loaded {len(pages)} pages ({hidden} hidden) into {settings.topic_pages}: "
            f"{report.delivered} acknowledged"
        )


@command.command("set")
@click.argument("page")
@click.option("--hidden/--visible", "hidden", default=None, help="Hide or show PAGE.")
@click.option(
    "--create",
    is_flag=True,
    default=False,
    help="Write a new record when the catalog has none of PAGE (e.g. a page known only "
    "from page views). Without it such a PAGE is refused.",
)
@pages_topic_option()
@json_option("catalog_json")
def set_(
    page: str, hidden: bool | None, create: bool, pages_topic: str | None, as_json: bool
) -> None:
    """Hide PAGE (never recommended) or show it again; the rest of its record is kept.

    PAGE must have a record on the catalog topic (loaded, or created before): a page the
    topic does not hold, which may be a typo, is refused unless --create is given.
    """
    if hidden is None:
        raise click.UsageError("say --hidden or --visible")
    if not page.strip():
        raise click.UsageError("PAGE must not be empty")
    settings = _settings(pages_topic)
    require(settings, kafka=True)
    try:
        record = set_available(settings, page, not hidden, create=create)
    except UnknownPage as exc:
        raise InputError(
            f"{exc}: nothing written; check the id, or add --create to write a record "
            "for it (a page known only from page views has none)"
        ) from None
    if as_json:
        click.echo(json.dumps(record, sort_keys=True))
    else:
        click.echo(f"{page} is now {'hidden' if hidden else 'visible'} in {settings.topic_pages}")


@command.command("show")
@click.argument("page")
@pages_topic_option()
@json_option("catalog_json", "The page's record as JSON instead of a line.")
def show(page: str, pages_topic: str | None, as_json: bool) -> None:
    """PAGE as the catalog topic holds it now: visible, hidden, expired or not published
    yet, and the rest of its record. Exit 1 when the topic has no record of PAGE."""
    settings = _settings(pages_topic)
    require(settings, kafka=True)
    ensure_topics(settings, [settings.topic_pages])
    try:
        record = find_page(read_catalog(settings), page, settings.topic_pages)
    except UnknownPage as exc:
        if as_json:
            click.echo("null")
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    if as_json:
        click.echo(json.dumps(record, sort_keys=True))
    else:
        click.echo(page_line(record, int(time.time() * 1000)))


@command.command("list")
@click.option("--hidden", "hidden_only", is_flag=True, help="Only hidden pages.")
@pages_topic_option()
@json_option("catalog_json", "One JSON array of records instead of lines.")
def list_(hidden_only: bool, pages_topic: str | None, as_json: bool) -> None:
    """The pages of the catalog topic, by page id, one line each (as `show` prints it)."""
    settings = _settings(pages_topic)
    require(settings, kafka=True)
    ensure_topics(settings, [settings.topic_pages])
    records = list_pages(read_catalog(settings), hidden_only)
    if as_json:
        click.echo(json.dumps(records, sort_keys=True))
        return
    now = int(time.time() * 1000)
    for record in records:
        click.echo(page_line(record, now))
    if not records:
        what = "hidden pages" if hidden_only else "pages"
        click.echo(f"no {what} in {settings.topic_pages}", err=True)
