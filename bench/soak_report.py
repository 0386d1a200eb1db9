"""The soak bench's figures and verdicts: pure functions of its samples (unit-tested).

:mod:`bench.soak` runs the pipeline and samples it; this module turns the samples into the
summary, the checks, the Markdown report and the plot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Sample = dict[str, Any]
PROCESSES = ("trainer", "scorer", "broker", "redis")
GROUPS = ("scorer", "trainer")
#: The RSS slope is judged only over a second half at least this long (seconds): over a
#: few minutes, warm-up growth (new users and pages) cannot be told from a leak.
MIN_SLOPE_SPAN_S = 600.0
ERROR_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) |Traceback \(most recent call last\)")
METRICS = {
    "streamrec_events_scored_total": "scored",
    "streamrec_served_hit_at_10": "served_hit_at_10",
    "streamrec_snapshot_age_seconds": "snapshot_age_s",
}


def vm_rss_mb(status: str) -> float | None:
    """VmRSS of a ``/proc/<pid>/status`` text, in MB."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def cpu_seconds(stat: str, ticks: int = 100) -> float | None:
    """utime + stime of a ``/proc/<pid>/stat`` text (the name may hold spaces), seconds."""
    try:
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks
    except (IndexError, ValueError):
        return None


def parse_metrics(text: str) -> dict[str, float]:
    """The unlabelled series of ``METRICS`` in Prometheus text, under their short names."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in METRICS:
            try:
                out[METRICS[name]] = float(value.split()[0])
            except (IndexError, ValueError):
                continue
    return out


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour; None under 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / var * 3600


def error_lines(text: str) -> list[str]:
    """Lines logged at ERROR or CRITICAL, and tracebacks."""
    return [line for line in text.splitlines() if ERROR_LINE.search(line)]


def second_half(samples: Sequence[Sample], duration_s: float) -> list[Sample]:
    """Samples taken while producing, from half the duration on."""
    return [s for s in samples if s["phase"] == "run" and s["t"] >= duration_s / 2]


def _series(samples: Sequence[Sample], key: str, name: str) -> list[tuple[float, float]]:
    return [(s["t"], s[key][name]) for s in samples if s[key].get(name) is not None]


def cpu_pct(points: Sequence[tuple[float, float]]) -> float | None:
    """CPU used between the first and last (seconds, CPU seconds) point, % of one core."""
    wall = points[-1][0] - points[0][0] if len(points) > 1 else 0.0
    return round(100 * (points[-1][1] - points[0][1]) / wall, 1) if wall > 0 else None


def process_figures(samples: Sequence[Sample], half: Sequence[Sample]) -> dict[str, Any]:
    """Per process: RSS at start, end, max, its slope over ``half`` and the CPU used in
    each half of the run (a broker whose work grows with what it holds shows here)."""
    first = [s for s in samples if s["phase"] == "run" and (not half or s["t"] <= half[0]["t"])]
    out = {}
    for p in PROCESSES:
        rss = _series(samples, "rss_mb", p)
        slope = slope_per_hour(_series(half, "rss_mb", p))
        out[p] = {
            "rss_mb_start": rss[0][1] if rss else None,
            "rss_mb_end": rss[-1][1] if rss else None,
            "rss_mb_max": max((v for _, v in rss), default=None),
            "rss_slope_mb_per_h": None if slope is None else round(slope, 1),
            "cpu_pct_first_half": cpu_pct(_series(first, "cpu_s", p)),
            "cpu_pct_second_half": cpu_pct(_series(half, "cpu_s", p)),
        }
    return out


def evaluate(
    samples: Sequence[Sample], final: Mapping[str, Any], limits: Mapping[str, float]
) -> dict[str, Any]:
    """The summary and the checks of a run from its samples and what was read at the end."""
    f, half = final, second_half(samples, final["duration_s"])
    missing = f["produced"] - f["answered"]
    lags = {g: [s["lag"][g] for s in half if s["lag"].get(g) is not None] for g in GROUPS}
    lag_max = {g: max(v, default=None) for g, v in lags.items()}
    bound = limits["rate"] * limits["max_lag_s"]
    procs = process_figures(samples, half)
    slopes = {p: procs[p]["rss_slope_mb_per_h"] for p in ("trainer", "scorer")}
    span = f["duration_s"] / 2
    judge_rss = span >= MIN_SLOPE_SPAN_S and None not in slopes.values()
    exits = f["exit_codes"]
    checks: list[tuple[str, bool | None, str]] = [
        (
            "every page view answered once",
            missing == 0 and f["duplicates"] == 0 and f["unexpected"] == 0,
            f"{f['produced']:,} produced, {f['answered']:,} answered, {missing:,} missing, "
            f"{f['duplicates']:,} duplicates, {f['unexpected']:,} unknown ids, "
            f"{f['dead_letters']:,} dead letters",
        ),
        (
            "events learned == produced",
            f["learned_offsets"] == f["end_offsets"] and f["events_seen"] == f["produced"],
            f"final snapshot v{f['final_version']}: offsets sum {f['learned_offsets']:,}, "
            f"events_seen {f['events_seen']:,}; page-views end offsets sum {f['end_offsets']:,}",
        ),
        (
            "lag bounded over the second half",
            all(v is not None and v <= bound for v in lag_max.values()) if half else None,
            f"max lag scorer {_fmt(lag_max['scorer'])}, trainer {_fmt(lag_max['trainer'])} "
            f"(bound {bound:,.0f} = {limits['max_lag_s']:g} s of traffic)",
        ),
        (
            "RSS flat over the second half",
            all(v <= limits["max_rss_slope"] for v in slopes.values()) if judge_rss else None,
            f"trainer {_fmt(slopes['trainer'])} MB/h, scorer {_fmt(slopes['scorer'])} MB/h "
            f"(limit {limits['max_rss_slope']:g}; judged over a second half of "
            f"{MIN_SLOPE_SPAN_S / 60:g} min or more, this one {span / 60:.1f} min)",
        ),
        (
            "no error lines in the trainer's and scorer's logs",
            sum(f["error_lines"].values()) == 0,
            ", ".join(f"{k} {v}" for k, v in f["error_lines"].items()),
        ),
        (
            "clean run and stop",
            f["died"] is None
            and f["drained"]
            and exits.get("trainer") == exits.get("scorer") == 0
            and exits.get("produce") in (0, 130),
            f"exit codes {exits}; drained {f['drained']} {f['drain_s']} s after produce stopped"
            + (f"; {f['died']}" if f["died"] else ""),
        ),
    ]
    return {
        **{k: f[k] for k in ("duration_s", "produced", "answered", "duplicates")},
        "missing": missing,
        "max_lag_second_half": lag_max,
        "lag_bound": bound,
        "processes": procs,
        "checks": [{"name": n, "passed": ok, "detail": d} for n, ok, d in checks],
        "passed": all(ok is not False for _, ok, _ in checks),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def render_markdown(result: Mapping[str, Any]) -> str:
    """The short report: the run, a table of figures per process, the checks."""
    cfg, s, m = result["config"], result["summary"], result["machine"]
    verdict = {True: "pass", False: "**FAIL**", None: "not judged"}
    lines = [
        f"# Soak: {cfg['minutes']:g} min at {cfg['rate']:g} page views/s "
        f"({result['services']} services)",
        "",
        f"World: `streamrec generate --users {cfg['users']} --pages {cfg['pages']} "
        f"--events {cfg['events']}`; one {_trainer(cfg)} and one scorer "
        "(`python -m streams.cli`), "
        f"sampled every {cfg['sample_s']:g} s. Produced for {s['duration_s']} s: "
        f"{s['produced']:,} page views. {m['cores']} cores, load average at start "
        f"{m['load_avg_at_start']}.",
        "",
        "| process | RSS start MB | RSS end MB | RSS max MB | RSS slope, 2nd half, MB/h "
        "| CPU % of a core, 1st half | 2nd half |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p, fig in s["processes"].items():
        lines.append(f"| {p} | " + " | ".join(_fmt(v) for v in fig.values()) + " |")
    lines += ["", "| check | verdict | detail |", "|---|---|---|"]
    lines += [f"| {c['name']} | {verdict[c['passed']]} | {c['detail']} |" for c in s["checks"]]
    for name, found in result["final"].get("error_examples", {}).items():
        lines += ["", f"First error lines of the {name}:", ""] if found else []
        lines += [f"    {line}" for line in found]
    lines += ["", f"Overall: **{'pass' if s['passed'] else 'FAIL'}**."]
    return "\n".join(lines) + "\n"


def plot(result: Mapping[str, Any], path: Path) -> bool:
    """RSS, lag and events learned/answered over time; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    samples = result["samples"]
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for p in PROCESSES:
        axes[0].plot(*zip(*_series(samples, "rss_mb", p), strict=True), label=p)
    for g in GROUPS:
        points = _series(samples, "lag", g)
        if points:
            axes[1].plot(*zip(*points, strict=True), label=f"{g} group")
    for key, label in (("produced", "produced"), ("learned", "learned"), ("scored", "answered")):
        points = [(s["t"], s[key]) for s in samples if s.get(key) is not None]
        if points:
            axes[2].plot(*zip(*points, strict=True), label=label)
    for ax, ylabel in zip(axes, ("RSS, MB", "consumer lag, records", "events"), strict=True):
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
        ax.axvline(result["summary"]["duration_s"], color="grey", linestyle=":")
    axes[2].set_xlabel("seconds since produce started (dotted: produce stopped)")
    axes[0].set_title(f"Soak, {result['config']['rate']:g} page views/s")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _trainer(cfg: dict[str, Any]) -> str:
    """How the run's trainer ran: plain, or as a shard (``--trainer-shard``)."""
    spec = cfg.get("trainer_shard")
    return f"trainer shard (`trainer --shard {spec}`)" if spec else "trainer"
