"""``bench/results/sizing.md``: the per-unit costs, how they were fitted, and the table."""

from __future__ import annotations

from typing import Any

from .sizing_table import GB


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def _b(value: float) -> str:
    return f"{value:,.0f} B"


def _fit(f: dict[str, Any]) -> str:
    """A bytes fit: B per unit, the fixed part in MB, R²."""
    slopes = ", ".join(f"{v:,.1f} B/{k.rstrip('s')}" for k, v in f["coef"].items())
    return f"{slopes}; fixed {f['intercept'] / 1e6:,.1f} MB; R² {f['r2']:.3f} over {f['n']} scales"


def _cpu_fit(f: dict[str, Any]) -> str:
    """A CPU-seconds-over-events fit: µs per event, the fixed part in s, R²."""
    return (
        f"{f['coef']['events'] * 1e6:.1f} µs/event; fixed {f['intercept']:.1f} s; "
        f"R² {f['r2']:.3f} over {f['n']} scales"
    )


def _costs(out: dict[str, Any]) -> list[str]:
    c, d = out["costs"], out["derivation"]
    fits, med, a = d["fits"], d["per_event_median"], out["assumptions"]
    links = d["links_per_page_measured"]
    redis_short, redis_long = fits["redis_8"]["coef"]["users"], fits["redis_36"]["coef"]["users"]
    spark = d["retrain"]
    return [
        "| cost | value | how |",
        "|---|---:|---|",
        f"| trainer bytes per buffered user | {_b(c['trainer_bytes_per_user'])} | peak RSS of "
        f"`streamrec trainer` after catching up: {_fit(fits['trainer_peak_rss'])} |",
        f"| trainer bytes per page | {_b(c['trainer_bytes_per_page'])} | the same fit's bytes "
        f"per link x {d['links_per_page_priced']} links (a full row; measured rows held "
        f"{min(links):.0f}-{max(links):.0f}) |",
        f"| trainer fixed | {c['trainer_base_bytes'] / 1e6:,.0f} MB | the fit's intercept |",
        f"| scorer bytes per page | {_b(c['scorer_bytes_per_page'])} | peak RSS of "
        f"`streamrec scorer` after loading and scoring: {_fit(fits['scorer_peak_rss'])} |",
        f"| scorer bytes per buffered user | {_b(c['scorer_bytes_per_user'])} | the same fit "
        "(the snapshot carries the trainer's user buffers); both scorer figures are at least "
        "the snapshot's, whose arrays a scorer holds |",
        f"| scorer fixed | {c['scorer_base_bytes'] / 1e6:,.0f} MB | the fit's intercept |",
        f"| full snapshot bytes per page / per user | {_b(c['snapshot_bytes_per_page'])} / "
        f"{_b(c['snapshot_bytes_per_user'])} | {_fit(fits['snapshot'])} |",
        f"| Redis bytes per user (history of {a['history_length']} + served list of "
        f"{a['k']}) | {_b(c['redis_bytes_per_user'])} | `used_memory` slope, "
        f"{a['redis_id_length']}-character ids: {_fit(fits['redis_36'])}; 8-character ids: "
        f"{_b(redis_short)} (MEMORY USAGE per key below) |",
        f"| scorer CPU per event | {_us(c['scorer_cpu_s_per_event'])} | /proc CPU of the "
        f"scorer net of its idle rate; median over worlds: paced 1,000/s "
        f"{_us(med['scorer_paced'])}, backlog {_us(med['scorer_backlog'])}; the larger |",
        f"| Redis CPU per event | {_us(c['redis_cpu_s_per_event'])} | INFO cpu of the Redis "
        f"server over the same phases: paced {_us(med['redis_paced'])}, backlog "
        f"{_us(med['redis_backlog'])}; the larger |",
        f"| trainer CPU per event | {_us(c['trainer_cpu_s_per_event'])} | /proc CPU of "
        "`streamrec trainer` when its snapshot covers the topic, over the events: "
        f"{_cpu_fit(fits['trainer_cpu'])}; between its first and that snapshot, per "
        f"world: {', '.join(_us(x) if x else '-' for x in d['per_event']['trainer'])} |",
        f"| retrain core-seconds per 1M events | {c['retrain_core_s_per_million']:.1f} s | "
        "slope of `streamrec retrain`'s read + aggregate seconds over events x cores: "
        + "; ".join(
            f"`{m}` {r['s_per_million']:.1f} s per 1M (x {r['cores']} = "
            f"{r['core_s_per_million']:.1f}; CPU of driver + JVM {r['cpu_s_per_million']:.1f} "
            "s per 1M)"
            for m, r in spark.items()
        )
        + "; the larger |",
        "",
        f"Redis MEMORY USAGE per key (median of a sample; {a['redis_id_length']}- and "
        "8-character ids): "
        + "; ".join(
            f"{h['id_length']} chars: history {_median(h['usage']['history'])} B, served "
            f"{_median(h['usage']['served'])} B"
            for h in out["histories"]
        )
        + f" (used_memory per user, which adds the key table and TTLs: {_b(redis_long)} / "
        f"{_b(redis_short)}).",
    ]


def _median(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0


def _worlds(out: dict[str, Any]) -> list[str]:
    lines = [
        "| world (users, pages, events) | buffered users | pages | links | trainer peak MB | "
        "trainer µs/event | snapshot MB | scorer peak MB | scorer µs/event backlog / paced |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in out["models"]:
        w, t, s = p["world"], p["trainer"], p["scorer"]
        back = [x for x in s["phases"] if x["kind"] == "backlog"]
        paced = [x for x in s["phases"] if x["kind"] == "paced"]
        b_us = sum(x["cpu_s"] for x in back) / sum(x["events"] for x in back) * 1e6
        p_us = sum(x["cpu_s"] for x in paced) / sum(x["events"] for x in paced) * 1e6
        lines.append(
            f"| {w['users']:,} / {w['pages']:,} / {w['events']:,} | {t['users']:,} | "
            f"{t['pages']:,} | {t['links']:,} | {t['peak_rss_bytes'] / 1e6:.0f} | "
            f"{(t['cpu_s_per_event'] or 0) * 1e6:.0f} | {t['snapshot_bytes'] / 1e6:.1f} | "
            f"{s['peak_rss_bytes'] / 1e6:.0f} | {b_us:.0f} / {p_us:.0f} |"
        )
    return lines


def _table(out: dict[str, Any]) -> list[str]:
    lines = [
        "| users | pages | events/s | scorers | scorer GB each | trainers (1 plain, N shards) "
        "| largest trainer GB | partitions | Redis nodes | Redis GB | retrain cores "
        "| first limit (demand / one unit) | does not fit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in out["table"]:
        limit = r["first_limit"]
        trainers = r["trainers"] or "none fits"
        lines.append(
            f"| {r['users']:,} | {r['pages']:,} | {r['events_per_s']:,.0f} | {r['scorers']} | "
            f"{r['scorer_memory_gb']:.1f} | {trainers} | {r['trainer_memory_gb']:.1f} | "
            f"{r['partitions']} | {r['redis_nodes']} | {r['redis_memory_gb']:.0f} | "
            f"{r['retrain_cores']} | {limit} ({r['ratios'][limit]:.2f}) | "
            f"{', '.join(r['blocked']) or '-'} |"
        )
    return lines


def _shards(out: dict[str, Any]) -> list[str]:
    lines = [
        "| world (users, pages, events) | shard | its users / links | peak RSS MB | "
        "predicted as a plain trainer MB | excess MB | CPU s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    summary = []
    for check in out["derivation"]["shard_check"]:
        w = check["world"]
        for p in check["processes"]:
            lines.append(
                f"| {w['users']:,} / {w['pages']:,} / {w['events']:,} | {p['shard']} of "
                f"{check['partitions']} partitions | {p['users']:,} / {p['links']:,} | "
                f"{p['peak_rss_bytes'] / 1e6:.0f} | {p['predicted_bytes'] / 1e6:.0f} | "
                f"{p['excess_bytes'] / 1e6:.0f} | {p['cpu_s'] or 0:.1f} |"
            )
        summary.append(
            f"{check['shards']} shards: the partitions' models held "
            f"{check['links_in_parts_over_merged']:.2f}x the links of their merge; all "
            f"shards together used {check['cpu_s_per_event'] * 1e6:.0f} µs of CPU per event "
            f"(start included), {check['shard_cpu_factor'] or 0:.2f}x a plain trainer's on "
            "the same world; "
            f"the shards other than the one furthest above the prediction (taken as the "
            f"merging one, {check['merging_shard']}) were {check['overhead_bytes'] / 1e6:.0f} "
            f"MB above it, and that one held {check['merger_factor']:.1f}x the "
            f"{check['merging_arrays_bytes'] / 1e6:.1f} MB of arrays of every partition's "
            "state and of the merge beyond that"
        )
    return [*lines, "", "; ".join(summary) + "."] if summary else []


def report(out: dict[str, Any]) -> str:
    a, m = out["assumptions"], out["machine"]
    lines = [
        "# Sizing: per-unit costs and what to deploy",
        "",
        f"`{out['command']}` on {m['cores']} shared cores ({m['cpu']}), load average "
        f"{m['load_avg_at_start']} at the start, {out['services']} broker and Redis, "
        f"{out['started_at']}; {out['seconds']} s"
        + (
            f"; costs and table recomputed from its measurements by `--rederive` at "
            f"{out['rederived_at']}"
            if out.get("rederived_at")
            else ""
        )
        + ". How to read it: [docs/sizing.md](../../docs/sizing.md).",
        "",
        "## Per-unit costs",
        "",
        *_costs(out),
        "",
        "## Measured worlds",
        "",
        "Each world: the generator's events in a topic, `streamrec trainer` (user buffers "
        "unbounded: `max_users` raised) catching up on them, then a kafka-engine scorer "
        "loading its model and scoring the next events (1,000 warm-up, then backlog "
        "phases, then 1,000/s paced).",
        "",
        *_worlds(out),
        "",
        "## Trainer shards: a check of the arithmetic",
        "",
        "`streamrec trainer --shard i/N` processes on one world (4 partitions): each one's "
        "peak RSS beside the plain trainer's fit applied to the users and links of its "
        "partitions' models. The table prices the merging shard with the largest factor "
        "measured here.",
        "",
        *_shards(out),
        "",
        "## The table",
        "",
        f"Assumptions: every user has a full history in Redis ({a['history_length']} pages, "
        f"a served list of {a['k']}, {a['redis_id_length']}-character ids); the trainer "
        f"keeps a buffer for {a['trainer_user_share']:.0%} of users (a plain trainer's "
        "snapshot, so every scorer, carries them; a merge of shards does not); every "
        "page's row is full, in every partition's model too; one plain trainer while it "
        f"fits, else the fewest shards (up to {a['trainers_max']}) that do, the topic "
        "having a partition per scorer or per shard, whichever is more, and the merging "
        f"shard holding {a['merger_factor']:.1f}x the arrays of every partition's state and "
        f"of the merge and the shards using {a['shard_cpu_factor']:.2f}x a plain trainer's "
        "CPU (the largest of the check above); processes and Redis nodes "
        f"are planned at {a['cpu_target']:.0%} of one core; a scorer or trainer may use "
        f"{a['process_memory_bytes'] / GB:.0f} GB and a Redis node "
        f"{a['redis_node_bytes'] / GB:.0f} GB usable; Redis holds "
        f"{a['full_snapshots_in_redis']:g} full snapshots' worth of snapshots; retrain reads "
        f"{a['retrain_days']:g} days of events within {a['retrain_window_s'] / 3600:g} h. "
        "Kafka brokers are not sized here (the embedded broker is not Kafka).",
        "",
        *_table(out),
        "",
    ]
    return "\n".join(lines)
