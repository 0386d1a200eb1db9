"""New-page cold start, measured prequentially: do new pages reach users sooner, and what
does it cost in hit@10?

``python -m bench.fresh_pages [--quick]`` writes ``bench/results/fresh_pages.{json,md}``.
World: ``streamrec generate`` defaults (2,000 users, 1,000 pages, 100k events, 14 days)
with ``--new-pages 0.2``: a fifth of the pages is published during the log and viewed only
from then on; the catalog gives each page its topic as category. Each variant runs the
exact protocol of ``streamrec evaluate`` (k = 10, history = last 50 pages, every page the
user has seen excluded) on the default model, alone (``slots=0``) or wrapped in
:class:`online_model.catalog.fresh.FreshBlend`. Reach: for each page published during the log,
the time from its publication to the first list that served it (a page never served
counts as not reached).
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Collection, Hashable, Sequence
from pathlib import Path
from typing import Any

from online_model.catalog.fresh import DAY_MS, FreshBlend
from online_model.data.generate import generate, page_catalog
from online_model.evaluation import evaluate
from online_model.registry import DEFAULT_MODEL, make_model

from .harness import machine
from .report import write_pair

RESULTS = Path(__file__).parent / "results"
log = logging.getLogger(__name__)


class FirstServed(FreshBlend):
    """:class:`FreshBlend`, noting when each page was first in a served list."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_served: dict[Hashable, int] = {}

    def _recommend(
        self, user: Hashable, k: int, history: Sequence[Hashable], exclude: Collection[Hashable]
    ) -> list[tuple[Hashable, float]]:
        items = super()._recommend(user, k, history, exclude)
        for page, _ in items:
            self.first_served.setdefault(page, self.now_ms)
        return items


def run(
    variant: dict[str, Any], rows: list[Any], pages: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    probe = FirstServed(
        make_model(DEFAULT_MODEL, {}),
        pages,
        slots=variant["slots"],
        window_ms=variant["window_days"] * DAY_MS,
        max_views=variant["max_views"],
    )
    report = evaluate(probe, rows, k=10)
    start = min(meta["published_at"] for meta in pages.values())
    new = {p: meta["published_at"] for p, meta in pages.items() if meta["published_at"] > start}
    delays_h = [
        (probe.first_served[p] - at) / 3_600_000
        for p, at in new.items()
        if p in probe.first_served and probe.first_served[p] >= at
    ]
    return {
        **variant,
        "hit@10": report["hit@10"],
        "mrr@10": report["mrr@10"],
        "new_pages": len(new),
        "new_pages_served": len(delays_h),
        "served_within_24h": sum(d <= 24 for d in delays_h),
        "median_hours_to_first_served": round(statistics.median(delays_h), 2) if delays_h else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30k events")
    parser.add_argument("--output", type=Path, default=RESULTS / "fresh_pages.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    views = generate(n_events=30_000 if args.quick else 100_000, new_pages=0.2)
    pages = page_catalog(views)
    rows = views.rows()
    variants = [
        {"name": "off", "slots": 0, "window_days": 1, "max_views": 5},
        {"name": "1 slot, 1 day, <= 5 views", "slots": 1, "window_days": 1, "max_views": 5},
        {"name": "1 slot, 2 days, <= 20 views", "slots": 1, "window_days": 2, "max_views": 20},
        {"name": "2 slots, 1 day, <= 5 views", "slots": 2, "window_days": 1, "max_views": 5},
    ]
    results = []
    for variant in variants:
        results.append(run(variant, rows, pages))
        log.info("%s", results[-1])
    base = results[0]["hit@10"]
    for r in results:
        r["hit_change"] = round(r["hit@10"] / base - 1, 4)
    out = {"machine": machine(), "n_events": len(rows), "results": results}
    write_pair(args.output, out, report(out))
    print(report(out))


def report(out: dict[str, Any]) -> str:
    lines = [
        "# New-page cold start (prequential, generator with --new-pages 0.2)",
        "",
        f"{out['n_events']:,} events; default model; k = 10.",
        "",
        "| variant | hit@10 | change | mrr@10 | new pages served | within 24 h "
        "| median h to first served |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in out["results"]:
        lines.append(
            f"| {r['name']} | {r['hit@10']:.4f} | {r['hit_change']:+.1%} | {r['mrr@10']:.4f} | "
            f"{r['new_pages_served']}/{r['new_pages']} | {r['served_within_24h']} | "
            f"{r['median_hours_to_first_served']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
