"""Aggregation of runs into figures, and the JSON / Markdown / PNG the benches write.

Every figure is the median of several runs, kept together with the runs themselves so
that the spread is visible (``summary``). Ratios are taken per round, between variants
measured side by side, and then the median of those is reported (``paired_ratio``):
on a shared machine that is steadier than a ratio of medians taken at different times.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(runs: Sequence[float | None], digits: int = 1) -> dict[str, Any]:
    """Median, min and max of the runs that produced a value (None = run failed)."""
    good = [float(r) for r in runs if r is not None and not math.isnan(r)]
    if not good:
        return {"median": None, "min": None, "max": None, "runs": list(runs), "n": 0}
    return {
        "median": round(statistics.median(good), digits),
        "min": round(min(good), digits),
        "max": round(max(good), digits),
        "runs": [None if r is None else round(float(r), digits) for r in runs],
        "n": len(good),
    }


def paired_ratio(
    numerators: Sequence[float | None],
    denominators: Sequence[float | None],
) -> dict[str, Any]:
    """Median of per-round ratios ``numerators[i] / denominators[i]``."""
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True) if n is not None and d]
    return summary(ratios, digits=3)


def target(
    measured: float | None,
    goal: float,
    higher_is_better: bool,
    text: str,
) -> dict[str, Any]:
    """A target with its verdict: met, missed, or not measured."""
    if measured is None:
        verdict = "not measured"
    elif higher_is_better:
        verdict = "met" if measured >= goal else "missed"
    else:
        verdict = "met" if measured <= goal else "missed"
    return {"target": text, "goal": goal, "measured": measured, "verdict": verdict}


def write_json(name: str, payload: Mapping[str, Any], results: Path = RESULTS) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    return path


def write_pair(output: Path, payload: Mapping[str, Any], markdown: str) -> None:
    """A standalone bench's results: ``output`` (JSON) and the same path with ``.md``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2) + "\n")
    output.with_suffix(".md").write_text(markdown)


def load_json(name: str, results: Path = RESULTS) -> dict[str, Any] | None:
    try:
        return dict(json.loads((results / f"{name}.json").read_text()))
    except (OSError, ValueError):
        return None


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value >= 100:
        value = round(value)
    if isinstance(value, int | float) and abs(value) >= 1000:
        return f"{value:,.0f}{unit}"
    return f"{value}{unit}"


def results_table(sections: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The short table REPORT.md leads with: one row per figure, median [min-max]."""
    rows: list[tuple[str, Any, str]] = []
    tp = sections.get("scorer_throughput")
    if tp:
        for variant, label in (
            ("ours", "scorer, ours (Faust agent, batched)"),
            ("ours-kafka", "scorer, ours on the kafka engine (confluent-kafka loop, batched)"),
            ("naive", "naive Faust agent (one event at a time)"),
            ("ceiling", "bare Faust ceiling (take + send_soon, no work)"),
            ("plain", "plain confluent-kafka loop, same work"),
        ):
            fig = tp["variants"].get(variant, {}).get("events_per_s")
            if fig:
                rows.append((f"{label}, events/s", fig, ""))
        for name, label in (
            ("ours_over_naive", "ours / naive"),
            ("ours_over_ceiling", "ours / ceiling"),
            ("plain_over_ours", "plain loop / ours"),
            ("ours_kafka_over_plain", "ours kafka engine / plain loop"),
            ("ours_kafka_over_ours", "ours kafka engine / ours faust engine"),
        ):
            if name in tp.get("ratios", {}):
                rows.append((label, tp["ratios"][name], "x"))
    lat = sections.get("latency")
    if lat:
        for rate, block in lat["rates"].items():
            for q in ("p50", "p95", "p99"):
                rows.append((f"latency at {rate} ev/s, {q}", block[f"{q}_ms"], " ms"))
            hop = block.get("broker_one_hop")
            if hop:
                for q in ("p50", "p99"):
                    rows.append(
                        (f"broker alone, one hop, at {rate} ev/s, {q}", hop[f"{q}_ms"], " ms")
                    )
        for engine, by in lat.get("engines", {}).items():
            for rate, block in by["rates"].items():
                for q in ("p50", "p99"):
                    rows.append(
                        (f"latency at {rate} ev/s, {q}, {engine} engine", block[f"{q}_ms"], " ms")
                    )
    rows += _engine_load_rows(sections.get("engine_load"))
    fresh = sections.get("freshness")
    if fresh:
        for q in ("p50", "p99"):
            rows.append(
                (
                    f"freshness (interval {fresh['snapshot_interval_s']} s), {q}",
                    fresh[f"{q}_s"],
                    " s",
                )
            )
    tr = sections.get("trainer")
    if tr:
        rows.append(("trainer, events/s learned + snapshotted", tr["events_per_s"], ""))
        rows.append(("raw learn_one, events/s (same events)", tr["raw_learn_per_s"], ""))
        rows.append(("trainer / raw learn_one", tr["trainer_over_raw"], "x"))
        if tr.get("trainer_over_raw_cpu"):
            rows.append(
                ("trainer / raw learn_one, per CPU second", tr["trainer_over_raw_cpu"], "x")
            )
    rp = sections.get("replay")
    if rp:
        rows.append(
            (f"rebuild from {rp['n_events']:,} events ({rp['method']}), s", rp["seconds"], " s")
        )
    mem = sections.get("memory")
    if mem:
        for proc in ("scorer", "trainer"):
            if mem.get(proc):
                rows.append((f"peak RSS {proc}, MB", mem[proc], " MB"))
    lines = ["| figure | median | min - max | runs |", "|---|---:|---:|---:|"]
    for label, fig, unit in rows:
        lines.append(
            f"| {label} | {_fmt(fig['median'], unit)} | "
            f"{_fmt(fig['min'])} - {_fmt(fig['max'])} | {fig['n']} |"
        )
    return lines


def _engine_load_rows(el: Mapping[str, Any] | None) -> list[tuple[str, Any, str]]:
    """Rows of the kafka engine's load section: tuning at 1k ev/s, sweep, scaling."""
    if not el:
        return []
    rows: list[tuple[str, Any, str]] = []
    tuning = el["tuning"]
    for name, fig in tuning["configs"].items():
        for q in ("p50", "p99"):
            rows.append((f"kafka engine at 1k ev/s, {name} tuning, {q}", fig[f"{q}_ms"], " ms"))
        for leg, what in (("in", "produce -> scored"), ("out", "scored -> read")):
            rows.append((f"... {name} tuning, {what}, p99", fig[f"{leg}_ms"]["p99"], " ms"))
    for q in ("p50", "p99"):
        rows.append(
            (
                f"broker alone, one hop, 1k ev/s, {q} (same rounds)",
                tuning["broker_one_hop"][f"{q}_ms"],
                " ms",
            )
        )
    rows.append(("after / before tuning, p99 at 1k ev/s", tuning["after_over_before_p99"], "x"))
    rows.append(("after tuning p99 / broker one-hop p99", tuning["after_p99_over_hop_p99"], "x"))
    for rate, r in el["sweep"]["rates"].items():
        one = {"median": r["p99"], "min": r["p99"], "max": r["p99"], "n": 1}
        label = (
            f"sweep, {rate} ev/s asked ({r['offered_per_s']} offered, "
            f"{r['answered_per_s']} answered/s), p99"
        )
        rows.append((label, one, " ms"))
    for workers, w in el["scaling"]["workers"].items():
        rows.append((f"{workers} worker(s), 2 partitions, events/s", w["events_per_s"], ""))
    rows.append(("2 workers / 1 worker, per round", el["scaling"]["two_over_one"], "x"))
    return rows


def targets_table(sections: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["| target | measured | verdict |", "|---|---:|---|"]
    for section in sections.values():
        for t in section.get("targets", []):
            lines.append(f"| {t['target']} | {_fmt(t['measured'])} | **{t['verdict']}** |")
    return lines
