"""The figures and the Markdown report of :mod:`bench.rest_load` (medians over rounds,
paired ratios), apart from the load it measures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .report import paired_ratio, summary

_KEYS = ("offered_per_s", "ok_per_s", "refused_per_s", "p50_ms", "p99_ms", "kafka_events_per_s")


def _medians(per: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: summary([x[k] for x in per]) for k in _KEYS}


def figures(
    runs: dict[str, list[dict[str, Any]]], connections: Sequence[int], loads: Sequence[int]
) -> dict[str, Any]:
    """Medians over rounds, per configuration; and the paired hot-path ratios."""
    out: dict[str, Any] = {}
    for name, per in runs.items():
        out[name] = {
            "saturation_per_s": summary([x["saturation_per_s"] for x in per], 0),
            "idle_kafka_events_per_s": summary([x["idle"]["kafka_events_per_s"] for x in per], 0),
            "sweep": {
                str(c): _medians([x["sweep"][i] for x in per]) for i, c in enumerate(connections)
            },
            "rates": {str(load): _medians([x["rates"][str(load)] for x in per]) for load in loads},
            "hot_path": _medians([x["hot_path"] for x in per]),
            "overload": _medians([x["overload"] for x in per]),
        }
    # The middleware's own cost, none refused: p50 at the hot-path rate, and with one
    # connection (no queueing at all).
    for key, pick in (
        ("hot_path", lambda x: x["hot_path"]["p50_ms"]),
        ("one_connection", lambda x: x["sweep"][0]["p50_ms"]),
    ):
        p50 = {name: [pick(x) for x in per] for name, per in runs.items()}
        out[f"p50_{key}_bounded_over_unbounded"] = paired_ratio(p50["bounded"], p50["unbounded"])
    return out


def _ms(s: dict[str, Any]) -> str:
    return "-" if s["median"] is None else f"{s['median']:.1f}"


def _n(s: dict[str, Any]) -> str:
    return "-" if s["median"] is None else f"{s['median']:,.0f}"


def _ratio(s: dict[str, Any]) -> str:
    return f"{s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f})"


def report(out: dict[str, Any]) -> str:
    f = out["figures"]
    b, u = f["bounded"], f["unbounded"]
    bound = out["configs"]["bounded"]
    lines = [
        f"# REST load on a scorer scoring {out['kafka_rate']:,.0f} page views/s "
        f"({out['services']} broker)",
        "",
        f"One kafka-engine scorer per run, {out['rounds']} rounds, the two configurations "
        f"alternated: `STREAMREC_REST_MAX_IN_FLIGHT={bound}` (the default, *bounded*) and `0` "
        "(*unbounded*: the middleware is not installed). Page views come from `streamrec "
        "produce --rate` in its own process for the scorer's whole life; wrk (its own "
        "process, `bench/rest_load.lua`) asks `GET /recommendations/<user>?k=10` with a "
        "bearer token, a random user of the world each time. *Kafka events/s* = the "
        "scorer's `streamrec_events_scored_total` over the same seconds. Medians over "
        f"rounds (min-max in the JSON). Load average at start "
        f"{out['machine']['load_avg_at_start']} on {out['machine']['cores']} cores shared "
        "with the broker, Redis, the producer, wrk and other work; the bench ran under "
        "`nice`.",
        "",
        "## Saturation, and 25 / 50 / 75 % of it (the default, bounded)",
        "",
        f"Saturation = the most 200s/s of the closed-loop sweep below, per run: bounded "
        f"{_n(b['saturation_per_s'])}/s, unbounded {_n(u['saturation_per_s'])}/s. Each run's "
        f"fixed rates are fractions of its own saturation, sent open loop over "
        f"{out['rate_connections']} connections (each wrk thread hands out send times "
        "`i / rate` to its free connections; latency from the actual send).",
        "",
        "| REST load | offered/s | 200s/s | p50 ms | p99 ms | Kafka events/s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| none | - | - | - | - | {_n(b['idle_kafka_events_per_s'])} |",
    ]
    for load in out["loads"]:
        x = b["rates"][str(load)]
        lines.append(
            f"| {load} % | {_n(x['offered_per_s'])} | {_n(x['ok_per_s'])} | {_ms(x['p50_ms'])} "
            f"| {_ms(x['p99_ms'])} | {_n(x['kafka_events_per_s'])} |"
        )
    x = b["saturation_per_s"]
    lines += [
        f"| saturation (closed loop) | - | {_n(x)} | - | - | - |",
        "",
        f"## Overload: {out['overload']['percent_of_saturation']} % of saturation offered "
        f"over {out['overload']['connections']} connections",
        "",
        "| config | offered/s | 200s/s | 503s/s | p50 ms (all answers) | p99 ms | Kafka events/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("unbounded", "bounded"):
        x = f[name]["overload"]
        lines.append(
            f"| {name} | {_n(x['offered_per_s'])} | {_n(x['ok_per_s'])} "
            f"| {_n(x['refused_per_s'])} | {_ms(x['p50_ms'])} | {_ms(x['p99_ms'])} "
            f"| {_n(x['kafka_events_per_s'])} |"
        )
    lines += [
        "",
        "## Concurrency sweep (closed loop: each connection asks again as soon as answered)",
        "",
        "| connections | config | 200s/s | 503s/s | p50 ms | p99 ms | Kafka events/s |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in out["connections"]:
        for name in ("unbounded", "bounded"):
            x = f[name]["sweep"][str(c)]
            lines.append(
                f"| {c} | {name} | {_n(x['ok_per_s'])} | {_n(x['refused_per_s'])} "
                f"| {_ms(x['p50_ms'])} | {_ms(x['p99_ms'])} | {_n(x['kafka_events_per_s'])} |"
            )
    hot = out["hot_path"]
    lines += [
        "",
        "p50 and p99 count every answer: a 503 is answered at once, so where some are "
        "refused they are not the 200s' own. A closed-loop client that ignores "
        "`Retry-After` (wrk) asks again at once after each 503.",
        "",
        "## The middleware on the hot path",
        "",
        "p50 with the middleware installed (bounded) and without (unbounded), none refused; "
        "ratio bounded / unbounded per round, median (min-max):",
        "",
        "| load | p50 ms bounded | p50 ms unbounded | ratio |",
        "|---|---:|---:|---:|",
        f"| {hot['rate']}/s over {hot['connections']} connections | "
        f"{_ms(b['hot_path']['p50_ms'])} | {_ms(u['hot_path']['p50_ms'])} "
        f"| {_ratio(f['p50_hot_path_bounded_over_unbounded'])} |",
        f"| one connection, closed loop | {_ms(b['sweep']['1']['p50_ms'])} "
        f"| {_ms(u['sweep']['1']['p50_ms'])} "
        f"| {_ratio(f['p50_one_connection_bounded_over_unbounded'])} |",
    ]
    return "\n".join(lines) + "\n"
