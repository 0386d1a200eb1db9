"""``streamrec batch-score``: recommendations for a file of users, as REST answers them."""

from __future__ import annotations

import time

import click

from online_model.errors import InputError
from streams.catalog.follower import read_catalog
from streams.catalog.rules import parse_rules
from streams.cli.options import Count, k_option, setting_option
from streams.io.topics import ensure_topics
from streams.progress import Progress
from streams.scorer.batch_score import (
    FORMATS,
    check_distinct,
    format_for,
    open_writer,
    popularity_from_histories,
    read_users,
    score_users,
    write_rows,
)
from streams.scorer.core import ScoringCore
from streams.scorer.model_holder import ModelHolder, Served
from streams.services.probes import require
from streams.settings import Settings
from streams.state.history import HistoryStore
from streams.state.serving import served_line
from streams.wiring import serving, store_for


@click.command("batch-score")
@setting_option(
    "--users",
    "users_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    setting="batch_users",
    help="One user_id per line, or a CSV with a user_id column.",
)
@setting_option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    setting="batch_output",
    help="File to write (overwritten).",
)
@k_option("Pages per user.")
@setting_option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    setting="batch_format",
    help="jsonl: {user_id, items, model_name, model_version, history_length} per line; "
    "csv: one line per "
    "(user, rank); avro: container file of schemas/batch_recommendation.avsc. "
    "[default: from the --output suffix, else jsonl]",
)
@setting_option(
    "--chunk-size",
    type=Count(1),
    default=500,
    show_default=True,
    setting="batch_chunk_size",
    help="Users whose histories are read in one pipelined Redis round trip.",
)
@setting_option(
    "--category",
    "categories",
    multiple=True,
    setting="batch_category",
    help="Only pages the catalog lists in this category; repeat for any of several "
    "(the variable: separated by spaces).",
)
@setting_option(
    "--exclude",
    multiple=True,
    setting="batch_exclude",
    help="A page id nobody gets; repeat for several (the variable: separated by spaces).",
)
def command(
    users_path: str,
    output_path: str,
    k: int | None,
    fmt: str | None,
    chunk_size: int,
    categories: tuple[str, ...],
    exclude: tuple[str, ...],
) -> None:
    """Score every user of --users with the CURRENT model snapshot into --output.

    Same code path and exclusion rule as GET /recommendations/<user>: pages in the user's
    Redis history are not recommended, nor pages the catalog hides; --category and
    --exclude apply to every user as REST's category= and exclude= do. Unknown users get
    the cold-start list.
    """
    settings = Settings.from_env(k=k)
    rules = parse_rules(categories, exclude)  # BadRule: error: ..., exit 2
    fmt = format_for(output_path, fmt)
    check_distinct(users_path, output_path)
    users = read_users(users_path)
    # The catalog lives on Kafka: a missing broker is said at once, not after a timeout.
    require(settings, kafka=True)
    ensure_topics(settings, [settings.topic_pages])
    history = HistoryStore(
        settings.redis_client(),
        settings.model_name,
        settings.history_length,
        settings.history_ttl_s,
    )
    catalog = read_catalog(settings)  # the lists REST would serve now: hidden pages left out
    if rules.categories and not any(catalog.has_category(c) for c in rules.categories):
        # Online such a rule may be early; a whole file of empty lists is a mistake.
        wanted = ", ".join(sorted(rules.categories))
        raise InputError(
            f"--category: no page of the catalog is in {wanted}: every list would be empty"
        )
    # What scorers of the model name serve now: after a promotion another namespace.
    client = settings.redis_client(socket_timeout=5.0)
    now = serving(settings, client).read()
    core = ScoringCore(
        ModelHolder(),
        now.namespace,
        settings.k,
        settings.history_length,
        settings.max_event_bytes,
        settings.schema_registry_url,
        catalog,
        settings.fresh_slots,
    )
    store = store_for(settings, client)(now.namespace)
    snap = None if now.version is None else store.load(now.version)  # refused if unverified
    if snap is None:
        click.echo(
            f"model {now.namespace!r} has no current snapshot: using cold-start "
            f"popularity learned from the histories of these {len(users)} users (version 0)",
            err=True,
        )
        model = popularity_from_histories(history, users, chunk_size)
        served = Served(model, 0, time.time(), None, "cold-start popularity")
    else:
        meta = snap.meta
        served = Served(snap.model, meta.version, time.time(), meta.created_at, meta.model_class)
        click.echo(f"{served_line(now)} ({meta.model_class})", err=True)
    writer = open_writer(output_path, fmt)
    with Progress("scoring users", len(users), "users") as bar:
        rows = score_users(core, served, history, users, settings.k, chunk_size, bar.update, rules)
        n = write_rows(rows, writer)
    click.echo(f"wrote {n} users to {output_path} format={fmt} model_version={served.version}")
