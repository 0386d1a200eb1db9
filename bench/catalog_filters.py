"""What filtering costs the scoring core: events/s with a 100k-page catalog, filters on/off.

In process, no broker and no Redis (neither depends on the catalog): a generated world
with ``n_pages`` pages trains the default model on its first ``n_train`` events; the
next ``n_score`` events, by users with a history, are framed as Kafka messages and put
through :meth:`ScoringCore.decode` and :meth:`ScoringCore.score` in batches of 500, each
variant on its own core and catalog, rounds interleaving the variants (in a rotating
order) so every ratio compares runs made under the same machine load.
"""

from __future__ import annotations

import gc
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

from online_model.catalog import Catalog
from online_model.data.generate import generate
from online_model.registry import DEFAULT_MODEL, make_model
from streams.catalog.rules import CONTEXT_CATEGORY, CONTEXT_EXCLUDE
from streams.io.codec import PAGE_VIEW, AvroCodec
from streams.io.dlq import RawMessage
from streams.io.producer import page_view
from streams.scorer.core import ScoringCore
from streams.scorer.model_holder import ModelHolder, Served
from streams.state.history import UserState

from .harness import last_pages

log = logging.getLogger(__name__)

N_CATEGORIES = 10  # page i is in category c{i % 10}: a category rule keeps 10 % of pages
BATCH = 500

#: variant -> (what it is, the catalog it filters with, the context each view carries)
VARIANTS: dict[str, str] = {
    "off": "empty catalog (a scorer whose pages topic is empty): no filtering",
    "listed": "every page listed with its categories, none hidden: no filtering needed",
    "hidden_10": "10 % of the pages hidden (every tenth)",
    "hidden_90": "90 % of the pages hidden",
    "category": "every view asks for one category (10 % of the pages) in its context",
    "exclude": "every view excludes 10 pages (the top 10 of the popular ones) in its context",
}


def _catalog(variant: str, n_pages: int) -> tuple[Catalog, float]:
    catalog = Catalog()
    started = time.perf_counter()
    if variant != "off":
        for i in range(n_pages):
            hide = (variant == "hidden_10" and i % 10 == 0) or (
                variant == "hidden_90" and i % 10 != 0
            )
            page = f"p{i}"
            catalog.apply(
                page,
                {"page_id": page, "available": not hide, "categories": [f"c{i % N_CATEGORIES}"]},
            )
    return catalog, time.perf_counter() - started


def _context(variant: str, n: int, popular: list[str]) -> dict[str, str]:
    if variant == "category":
        return {CONTEXT_CATEGORY: f"c{n % N_CATEGORIES}"}
    if variant == "exclude":
        return {CONTEXT_EXCLUDE: "|".join(popular[:10])}
    return {}


def measure(n_pages: int, n_train: int, n_score: int, rounds: int) -> dict[str, Any]:
    rows = generate(
        n_users=max(1_000, n_pages // 2), n_pages=n_pages, n_events=n_train + 4 * n_score, seed=7
    ).rows()
    train = rows[:n_train]
    model = make_model(DEFAULT_MODEL, {})
    for user, page, ts, _ in train:
        model.learn_one(user, page, x={"ts": ts})
    known = {user for user, _, _, _ in train}
    score_rows = [r for r in rows[n_train:] if r[0] in known][:n_score]
    histories = last_pages(train, {r[0] for r in score_rows}, 50)
    counts: dict[str, int] = {}
    for _, page, _, _ in train:
        counts[page] = counts.get(page, 0) + 1
    popular = sorted(counts, key=counts.__getitem__, reverse=True)
    codec = AvroCodec.bundled(PAGE_VIEW)

    runs: dict[str, Callable[[], float]] = {}
    loads: dict[str, float] = {}
    lengths: dict[str, float] = {}
    for variant in VARIANTS:
        catalog, loads[variant] = _catalog(variant, n_pages)
        holder = ModelHolder()
        holder.current = Served(model, 1, time.time(), None, type(model).__name__)
        core = ScoringCore(holder, DEFAULT_MODEL, catalog=catalog)
        messages = []
        for i, (user, page, ts, session) in enumerate(score_rows):
            view = page_view(user, page, ts, session, event_id=f"e{i}")
            view["context"] = _context(variant, i, popular)
            messages.append(RawMessage("page-views", 0, i, user.encode(), codec.encode(view)))
        batches = [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]
        runs[variant] = _runner(core, batches, histories)
        lengths[variant] = _mean_length(core, batches, histories)

    # Six catalogs of 100k pages live side by side here (a scorer holds one): frozen out of
    # the cyclic GC, a collection over all of them cannot land on one variant's run.
    gc.collect()
    gc.freeze()
    per_round: list[dict[str, float]] = []
    order = list(runs)
    for r in range(rounds):
        rotated = order[r % len(order) :] + order[: r % len(order)]  # no variant always first
        rates = {variant: len(score_rows) / runs[variant]() for variant in rotated}
        per_round.append(rates)
        log.info("round %d/%d %s", r + 1, rounds, {v: round(x) for v, x in rates.items()})
    return {
        "n_pages": n_pages,
        "n_train": n_train,
        "n_score": len(score_rows),
        "rounds": rounds,
        "variants": {
            variant: {
                "what": VARIANTS[variant],
                "events_per_s": round(statistics.median(r[variant] for r in per_round)),
                "events_per_s_runs": [round(r[variant]) for r in per_round],
                "ratio_to_off": round(
                    statistics.median(r[variant] / r["off"] for r in per_round), 3
                ),
                "mean_list_length": round(lengths[variant], 2),
                "catalog_load_s": round(loads[variant], 3),
            }
            for variant in VARIANTS
        },
    }


def _runner(
    core: ScoringCore, batches: list[list[RawMessage]], histories: dict[str, list[str]]
) -> Callable[[], float]:
    def run() -> float:
        total = 0.0
        for batch in batches:
            state = UserState({m.key.decode(): list(histories[m.key.decode()]) for m in batch}, {})  # type: ignore[union-attr]
            started = time.perf_counter()
            views, _ = core.decode(batch)
            core.score(views, state)
            total += time.perf_counter() - started
        return total

    return run


def _mean_length(
    core: ScoringCore, batches: list[list[RawMessage]], histories: dict[str, list[str]]
) -> float:
    lengths = []
    for batch in batches:
        state = UserState({m.key.decode(): list(histories[m.key.decode()]) for m in batch}, {})  # type: ignore[union-attr]
        views, dead = core.decode(batch)
        assert not dead, dead[0].error
        lengths += [len(items) for items in core.score(views, state).update.served.values()]
    return statistics.fmean(lengths)
