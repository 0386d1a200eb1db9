"""``streamrec generate``: write a synthetic page-view CSV with realistic structure."""

from __future__ import annotations

import click

from online_model.data.generate import GeneratorConfig, generate, write_csv

_DEFAULTS = GeneratorConfig()


@click.command("generate")
@click.option(
    "--users",
    default=_DEFAULTS.n_users,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="STREAMREC_USERS",
    show_envvar=True,
    help="Number of users.",
)
@click.option(
    "--pages",
    default=_DEFAULTS.n_pages,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="STREAMREC_PAGES",
    show_envvar=True,
    help="Number of pages.",
)
@click.option(
    "--events",
    default=_DEFAULTS.n_events,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="STREAMREC_EVENTS",
    show_envvar=True,
    help="Number of page views.",
)
@click.option(
    "--seed",
    default=_DEFAULTS.seed,
    show_default=True,
    type=int,
    envvar="STREAMREC_SEED",
    show_envvar=True,
    help="Random seed (same seed, same file).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    envvar="STREAMREC_OUTPUT",
    show_envvar=True,
    help="CSV to write (user_id,page_id,ts_ms,session_id).",
)
def command(users: int, pages: int, events: int, seed: int, output: str) -> None:
    """Generate topic-clustered, session-structured page views with preference drift."""
    views = generate(n_users=users, n_pages=pages, n_events=events, seed=seed)
    n = write_csv(views, output)
    click.echo(f"wrote events={n} path={output}", err=True)
