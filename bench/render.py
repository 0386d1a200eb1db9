"""REPORT.md and pipeline.png from the section JSONs in ``bench/results/``.

The report is rebuilt from whatever section files exist, so ``--only latency`` refreshes
the latency figures and keeps the others (each section states when it was measured).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .report import load_json, results_table, summary, targets_table, write_json

log = logging.getLogger(__name__)

SECTION_FILES = ("scorer_throughput", "latency", "engine_load", "freshness", "trainer", "replay")
BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"


def memory_section(sections: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Peak RSS of the scorer (throughput runs) and trainer (catch-up runs)."""
    tp, tr = sections.get("scorer_throughput"), sections.get("trainer")
    out: dict[str, Any] = {
        "method": "VmHWM of the process from /proc/<pid>/status, read just before stopping it"
    }
    if tp:
        out["scorer"] = tp["variants"]["ours"]["peak_rss_mb"]
        out["scorer_context"] = (
            f"{tp['n_events']:,} events scored from "
            f"{tp['users_with_history']:,} users with history; model "
            "trained on the world below"
        )
    if tr:
        out["trainer"] = tr["peak_rss_mb"]
        out["trainer_context"] = f"trainer after learning {tr['n_events']:,} events from the topic"
    if len(out) == 1:
        return None
    return out


def _load(results: Path) -> dict[str, dict[str, Any]]:
    sections = {}
    for name in SECTION_FILES:
        data = load_json(name, results)
        if data is not None:
            sections[name] = data
    memory = memory_section(sections)
    if memory is not None:
        sections["memory"] = memory
    return sections


def _machine_line(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    return (
        f"{m['cores']} cores ({m['cpu'] or 'unknown CPU'}), Python {m['python']}, "
        f"load average at start {m['load_avg_at_start']}; {libs}"
    )


def write_report(results: Path, meta: dict[str, Any]) -> str:
    sections = _load(results)
    if "memory" in sections:
        write_json("memory", {"meta": meta, **sections["memory"]}, results)
    command = "python -m bench --quick" if meta["quick"] else "python -m bench"
    lines = [
        "# streamrec pipeline benchmarks",
        "",
        f"Produced by `{command}` ({meta['seconds']} s, services: {meta['services']}). "
        f"Machine: {_machine_line(meta)}.",
        "",
        f"World: {meta['world']['n_users']:,} users, {meta['world']['n_pages']:,} pages "
        f"(generator seed 7); model `{meta['world']['model']}` trained on the first "
        f"{meta['world']['n_train']:,} events.",
        "",
        "Every figure is the median of several runs; min - max shows their spread. "
        "Ratios are medians of per-round ratios measured side by side.",
        "",
        BEGIN,
        *results_table(sections),
        END,
        "",
        "## Targets",
        "",
        *targets_table(sections),
        "",
    ]
    for name, data in sections.items():
        when = data.get("meta", {}).get("started_at")
        notes = data.get("notes") or []
        tuning = data.get("tuning")
        if not notes and not tuning and not when:
            continue
        lines += [f"## {name.replace('_', ' ')}", ""]
        if when:
            quick = "quick" if data["meta"].get("quick") else "full"
            lines += [f"Measured {when} ({quick} run).", ""]
        if tuning:
            lines += ["Tuning: " + "; ".join(f"{k} = {v}" for k, v in tuning.items()) + ".", ""]
        lines += [f"- {note}" for note in notes]
        if notes:
            lines.append("")
    if plot(sections, results / "pipeline.png"):
        lines += ["![pipeline benchmarks](pipeline.png)", ""]
    text = "\n".join(lines)
    (results / "REPORT.md").write_text(text)
    return text


def plot(sections: dict[str, dict[str, Any]], path: Path) -> bool:
    """Throughput of the scorer variants and latency percentiles; False without data."""
    tp, lat = sections.get("scorer_throughput"), sections.get("latency")
    if not tp and not lat:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed (pip install streamrec[bench]): no plot")
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if tp:
        names = list(tp["variants"])
        figs = [tp["variants"][v]["events_per_s"] for v in names]
        med = [f["median"] or 0 for f in figs]
        err = [
            [m - (f["min"] or m) for m, f in zip(med, figs, strict=True)],
            [(f["max"] or m) - m for m, f in zip(med, figs, strict=True)],
        ]
        axes[0].bar(
            names, med, yerr=err, capsize=4, color=["C0", "C4", "C1", "C2", "C3"][: len(names)]
        )
        axes[0].set_ylabel("events/s (median, min-max)")
        axes[0].set_title(f"Scorer throughput, 1 worker, {tp['n_events']:,} events, k={tp['k']}")
    if lat:
        rates = list(lat["rates"])
        width = 0.25
        for i, q in enumerate(("p50", "p95", "p99")):
            values = [lat["rates"][r][f"{q}_ms"]["median"] or 0 for r in rates]
            axes[1].bar([j + (i - 1) * width for j in range(len(rates))], values, width, label=q)
        axes[1].set_xticks(range(len(rates)), [f"{r} ev/s" for r in rates])
        axes[1].set_ylabel("ms, page view produced → recommendation consumed (log)")
        axes[1].set_yscale("log")
        axes[1].set_title("Latency at offered rate")
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def quoted_block(report: str) -> str:
    """The results table between the markers of a report."""
    start, end = report.find(BEGIN), report.find(END)
    return report[start + len(BEGIN) : end].strip() if start >= 0 and end > start else ""


__all__ = ["memory_section", "plot", "quoted_block", "summary", "write_report"]
