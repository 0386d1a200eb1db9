"""``streamrec catalog``: load pages into the catalog, hide and show them.

The catalog is the compacted ``pages`` topic; scorers follow it and stop serving a
hidden, expired or deleted page as soon as they read its record.
"""

from __future__ import annotations

import dataclasses
import json

import click

from streams.catalog.pages_file import read_pages
from streams.catalog.publish import publish_pages, set_available
from streams.cli.options import json_option, pages_topic_option
from streams.ops.probes import require
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
@json_option("STREAMREC_CATALOG_JSON")
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
@pages_topic_option()
@json_option("STREAMREC_CATALOG_JSON")
def set_(page: str, hidden: bool | None, pages_topic: str | None, as_json: bool) -> None:
    """Hide PAGE (never recommended) or show it again; the rest of its record is kept."""
    if hidden is None:
        raise click.UsageError("say --hidden or --visible")
    if not page.strip():
        raise click.UsageError("PAGE must not be empty")
    settings = _settings(pages_topic)
    require(settings, kafka=True)
    record = set_available(settings, page, not hidden)
    if as_json:
        click.echo(json.dumps(record, sort_keys=True))
    else:
        click.echo(f"{page} is now {'hidden' if hidden else 'visible'} in {settings.topic_pages}")
