"""The report of :mod:`bench.candidate_depth_study`: its results as Markdown."""

from __future__ import annotations

from typing import Any

#: History-size buckets: label, least and first excluded number of distinct pages seen.
BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("< 20", 0, 20),
    ("20-99", 20, 100),
    ("100-499", 100, 500),
    (">= 500", 500, 1 << 60),
)


def markdown(result: dict[str, Any]) -> str:
    base = result["variants"]["baseline"]
    lines = [
        "# Candidate depth on the real purchase log",
        "",
        f"`python -m bench.candidate_depth_study{result['args']}` ({result['n_events']:,} "
        f"events, {base['scored']:,} scored; {result['date']}). The copy of the default of "
        "`bench/transition_study.py`; buckets by the number of distinct pages the user saw "
        "before the event.",
        "",
        "## Where the events and hits are, by history size (baseline)",
        "",
        "| distinct pages before | share of events | re-buy | hit@10 | hit@10 of the other "
        "events | MRR@10 | served from "
        "transitions | served from popularity | candidates left after exclusion | target in "
        "served rows¹ | in full rows of last 5¹ | of last 20¹ | in 2nd order¹ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in base["buckets"].items():
        lines.append(
            f"| {label} | {r['share']:.1%} | {r['repeat']:.1%} | {r['hit@10']:.4f} | "
            f"{r['hit@10'] / max(1 - r['repeat'], 1e-9):.4f} | {r['mrr@10']:.4f} | "
            f"{r['served_from_transitions']:.2f} | "
            f"{r['served_from_fill']:.2f} | {r['candidates_after_exclusion']:.1f} | "
            f"{r['in_served_rows']:.1%} | {r['in_full_rows_last5']:.1%} | "
            f"{r['in_full_rows_last20']:.1%} | {r['in_second_order']:.1%} |"
        )
    lines += [
        "",
        "¹ share of all the bucket's scored events (re-buys included, which are never "
        "reachable as they are excluded). Served rows: top 30 successors of the last 5 "
        "distinct pages; full rows: every page that ever followed (or, at half weight, "
        "preceded) them; 2nd order: in the full row of any served-row candidate.",
        "",
        "## Variants, one change at a time (whole log)",
        "",
        "| variant | hit@10 | MRR@10 | vs baseline | "
        + " | ".join(f"hit@10 {label}" for label, _, _ in BUCKETS)
        + " | seconds |",
        "|---|---:|---:|---:|" + "---:|" * len(BUCKETS) + "---:|",
    ]
    for label, r in result["variants"].items():
        lines.append(
            f"| {label} | {r['hit@10']:.4f} | {r['mrr@10']:.4f} | "
            f"{(r['hit@10'] / base['hit@10'] - 1) * 100:+.1f} % | "
            + " | ".join(f"{b['hit@10']:.4f}" for b in r["buckets"].values())
            + f" | {r['seconds']:.0f} |"
        )
    best = max(result["variants"], key=lambda label: result["variants"][label]["hit@10"])
    gain = (result["variants"][best]["hit@10"] / base["hit@10"] - 1) * 100
    lines += ["", f"Largest hit@10 gain: {best}, {gain:+.1f} %."]
    if not result.get("worlds"):
        lines[-1] += " The synthetic worlds were not run: no variant reached +2 %."
    if result.get("real_model"):
        lines += [
            "",
            "## The real `Covisitation` (online_model), same protocol",
            "",
            "| parameters | hit@10 | MRR@10 | "
            + " | ".join(f"hit@10 {label} (from transitions)" for label, _, _ in BUCKETS)
            + " | seconds |",
            "|---|---:|---:|" + "---:|" * len(BUCKETS) + "---:|",
        ]
        for label, r in result["real_model"].items():
            lines.append(
                f"| {label} | {r['hit@10']:.4f} | {r['mrr@10']:.4f} | "
                + " | ".join(
                    f"{b['hit@10']:.4f} ({b['served_from_transitions']:.2f})"
                    for b in r["buckets"].values()
                )
                + f" | {r['seconds']:.0f} |"
            )
    if result.get("worlds"):
        names = list(next(iter(result["worlds"].values())))
        lines += [
            "",
            "## Synthetic worlds, 30 % scale (hit@10, vs baseline)",
            "",
            "| variant | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        wb = result["worlds"]["baseline"]
        for label, per in result["worlds"].items():
            cells = [
                f"{per[w]['hit@10']:.4f}"
                + (
                    ""
                    if label == "baseline"
                    else f" ({(per[w]['hit@10'] / wb[w]['hit@10'] - 1) * 100:+.1f} %)"
                )
                for w in names
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)
