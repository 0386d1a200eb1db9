"""``streamrec generate``: write a synthetic page-view CSV with realistic structure."""

from __future__ import annotations

import click

from online_model.data.generate import GeneratorConfig, generate, write_catalog, write_csv
from streams.cli.options import Count, setting_option

_DEFAULTS = GeneratorConfig()


@click.command("generate")
@setting_option(
    "--users",
    default=_DEFAULTS.n_users,
    show_default=True,
    type=Count(1),
    setting="generate_users",
    help="Number of users.",
)
@setting_option(
    "--pages",
    default=_DEFAULTS.n_pages,
    show_default=True,
    type=Count(1),
    setting="generate_pages",
    help="Number of pages.",
)
@setting_option(
    "--events",
    default=_DEFAULTS.n_events,
    show_default=True,
    type=Count(1),
    setting="generate_events",
    help="Number of page views.",
)
@setting_option(
    "--seed",
    default=_DEFAULTS.seed,
    show_default=True,
    type=Count(0),
    setting="generate_seed",
    help="Random seed (same seed, same file).",
)
@setting_option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    setting="generate_output",
    help="CSV to write (user_id,page_id,ts_ms,session_id).",
)
@setting_option(
    "--new-pages",
    default=_DEFAULTS.new_pages,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    setting="generate_new_pages",
    help="Share of pages published during the timeline (none viewed before it).",
)
@setting_option(
    "--catalog",
    default=None,
    type=click.Path(dir_okay=False, writable=True),
    setting="generate_catalog",
    help="Also write the pages as a catalog CSV (page_id,categories,published_at) for "
    "`streamrec catalog load`.",
)
def command(
    users: int,
    pages: int,
    events: int,
    seed: int,
    output: str,
    new_pages: float,
    catalog: str | None,
) -> None:
    """Generate topic-clustered, session-structured page views with preference drift."""
    views = generate(n_users=users, n_pages=pages, n_events=events, seed=seed, new_pages=new_pages)
    n = write_csv(views, output)
    click.echo(f"wrote events={n} path={output}", err=True)
    if catalog is not None:
        n_pages = write_catalog(views, catalog)
        click.echo(f"wrote pages={n_pages} path={catalog}", err=True)
