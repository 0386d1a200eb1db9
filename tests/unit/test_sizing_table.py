"""The sizing table's arithmetic (bench.sizing_table): per-unit costs → process counts.

Round costs whose answers can be worked out by hand; no measurement, no timing."""

from __future__ import annotations

import dataclasses

import pytest

from bench.sizing_table import GB, Assumptions, Costs, fit_linear, plan, table, units

COSTS = Costs(
    trainer_base_bytes=1 * GB,
    trainer_bytes_per_user=200.0,
    trainer_bytes_per_page=10_000.0,
    scorer_base_bytes=0.5 * GB,
    scorer_bytes_per_user=10.0,
    scorer_bytes_per_page=2_000.0,
    snapshot_bytes_per_user=10.0,
    snapshot_bytes_per_page=1_000.0,
    redis_bytes_per_user=1_000.0,
    scorer_cpu_s_per_event=100e-6,  # 10,000 events/s per core
    trainer_cpu_s_per_event=20e-6,  # 50,000 events/s per core
    redis_cpu_s_per_event=5e-6,  # 200,000 events/s per core
    retrain_core_s_per_million=36.0,
)
#: Whole cores, memory budgets in round GB, retrain of one day within one hour.
EVEN = Assumptions(
    cpu_target=1.0,
    process_memory_bytes=10 * GB,
    redis_node_bytes=10 * GB,
    full_snapshots_in_redis=2.0,
    retrain_days=1.0,
    retrain_window_s=3600.0,
)


def test_units_rounds_up_but_not_on_float_noise() -> None:
    assert units(2.0, 1.0) == 2
    assert units(2.000000001, 1.0) == 2  # 10,000 x 100e-6 is 1.0000000000000002
    assert units(2.01, 1.0) == 3
    assert units(0.0, 1.0) == 1  # at least one of everything
    with pytest.raises(ValueError):
        units(1.0, 0.0)


def test_scorers_follow_events_and_cpu_target() -> None:
    assert plan(COSTS, 1_000, 1_000, 10_000, EVEN).scorers == 1
    assert plan(COSTS, 1_000, 1_000, 10_001, EVEN).scorers == 2
    assert plan(COSTS, 1_000, 1_000, 100_000, EVEN).scorers == 10
    # At half a core per process, twice as many.
    half = dataclasses.replace(EVEN, cpu_target=0.5)
    assert plan(COSTS, 1_000, 1_000, 100_000, half).scorers == 20


def test_memory_of_each_part() -> None:
    row = plan(COSTS, 10_000_000, 100_000, 1_000, EVEN)
    # scorer: 0.5 GB + 100k pages x 2 kB + 10M users x 10 B = 0.5 + 0.2 + 0.1
    assert row.scorer_memory_gb == pytest.approx(0.8)
    # trainer: 1 GB + 100k x 10 kB + 10M x 200 B = 1 + 1 + 2
    assert row.trainer_memory_gb == pytest.approx(4.0)
    # Redis: 10M x 1 kB of histories + 2 snapshots of (100k x 1 kB + 10M x 10 B) = 10 + 0.4
    assert row.redis_memory_gb == pytest.approx(10.4)
    assert row.redis_nodes == 2  # 10.4 GB over 10 GB nodes
    assert row.ratios["Redis memory"] == pytest.approx(1.04)
    assert row.first_limit == "Redis memory"
    assert row.blocked == []  # Redis nodes can be added


def test_redis_nodes_for_cpu_when_memory_is_small() -> None:
    row = plan(COSTS, 1_000, 1_000, 1_000_000, EVEN)
    assert row.ratios["Redis CPU"] == pytest.approx(5.0)
    assert row.redis_nodes == 5
    assert row.scorers == 100
    assert row.first_limit == "scorer CPU"


def test_one_plain_trainer_while_it_fits() -> None:
    row = plan(COSTS, 10_000_000, 100_000, 1_000, EVEN)
    assert (row.trainers, row.partitions) == (1, 1)
    assert row.trainer_memory_gb == pytest.approx(4.0)


def test_shards_for_cpu() -> None:
    # 100k events/s x 20 µs = 2 cores: 2 shards; the topic has a partition per scorer (10),
    # 5 per shard, each shard a page table per partition: 1 GB + 5 x 1k x 10 kB + 1k x
    # 200 B / 2, the merge's arrays (1 kB x 1k pages), and the merging shard 2 x those
    # x (10 + 1) besides.
    row = plan(COSTS, 1_000, 1_000, 100_000, EVEN)
    assert (row.trainers, row.partitions) == (2, 10)
    assert row.trainer_memory_gb == pytest.approx(1.0 + 0.05 + 0.0001 + 0.001 + 0.022)


def test_shards_cost_more_cpu_than_a_plain_trainer() -> None:
    # 2 cores of plain training at shards costing 1.6x: 3.2 cores, 4 shards.
    costly = dataclasses.replace(EVEN, shard_cpu_factor=1.6)
    assert plan(COSTS, 1_000, 1_000, 100_000, costly).trainers == 4
    # Within one core a plain trainer runs, whatever shards would cost.
    assert plan(COSTS, 1_000, 1_000, 50_000, costly).trainers == 1


def test_shards_for_memory() -> None:
    # A plain trainer: 1 GB + 100k pages x 10 kB + 100M users x 200 B = 22 GB > 10.
    # 2 shards: 1 + 1 + 10 + the merge 0.1 + merging 2 x 0.1 GB x 3 = 12.7 GB;
    # 3 shards: 1 + 1 + 6.67 + 0.1 + 0.8.
    row = plan(COSTS, 100_000_000, 100_000, 1_000, EVEN)
    assert row.ratios["trainer memory"] == pytest.approx(2.2)
    assert (row.trainers, row.partitions) == (3, 3)
    assert row.trainer_memory_gb == pytest.approx(1 + 1 + 20 / 3 + 0.1 + 0.8)
    assert row.blocked == []
    # A merge of shards holds no user buffers: scorers hold the pages only.
    assert row.scorer_memory_gb == pytest.approx(0.7)
    # Redis: histories 100 GB + 2 x (the model's and 3 partitions' page arrays, 4 x 0.1 GB,
    # + every user's buffer once in the partitions' snapshots, 1 GB).
    assert row.redis_memory_gb == pytest.approx(100 + 2 * (0.4 + 1.0))
    # On a cluster the partitions share the model's slot too: all of that 2.8 GB on one node.
    assert row.ratios["model's snapshots (one Redis node)"] == pytest.approx(0.28)


def test_no_layout_fits() -> None:
    two = dataclasses.replace(EVEN, trainers_max=2)
    row = plan(COSTS, 100_000_000, 100_000, 1_000, two)
    assert row.trainers == 0
    assert row.blocked == ["trainer memory"]
    one = dataclasses.replace(EVEN, trainers_max=1)
    assert plan(COSTS, 1_000, 1_000, 100_000, one).blocked == ["trainer CPU (no shard layout fits)"]
    # Pages alone past the budget: more shards only add page tables and merging.
    row = plan(COSTS, 1_000, 1_000_000, 1_000, EVEN)
    assert row.trainers == 0
    assert row.blocked == ["trainer memory"]
    huge = plan(COSTS, 1_000, 10_000_000, 1_000, EVEN)
    assert huge.scorer_memory_gb == pytest.approx(20.5, rel=1e-4)
    # ... and 2 snapshots of 10M pages x 1 kB, 20 GB, on the node holding the model's slot.
    assert huge.ratios["model's snapshots (one Redis node)"] == pytest.approx(2.0, rel=1e-4)
    assert huge.blocked == ["trainer memory", "scorer memory", "model's snapshots (one Redis node)"]


def test_trainer_user_share_scales_buffers_not_histories() -> None:
    share = dataclasses.replace(EVEN, trainer_user_share=0.5)
    row = plan(COSTS, 10_000_000, 100_000, 1_000, share)
    assert row.trainer_memory_gb == pytest.approx(3.0)  # 1 + 1 + 5M x 200 B
    # Histories of every user still; snapshots of half the buffers: 10 + 2 x (0.1 + 0.05)
    assert row.redis_memory_gb == pytest.approx(10.3)


def test_retrain_cores() -> None:
    # 10k events/s for a day = 864M events x 36 core-s per 1M = 31,104 core-s; in 1 h: 9 cores.
    assert plan(COSTS, 1_000, 1_000, 10_000, EVEN).retrain_cores == 9
    week = dataclasses.replace(EVEN, retrain_days=7.0)
    assert plan(COSTS, 1_000, 1_000, 10_000, week).retrain_cores == 61  # 60.48


def test_table_covers_every_combination_users_outermost() -> None:
    rows = table(COSTS, [1, 2], [10, 20, 30], [100.0, 200.0], EVEN)
    assert len(rows) == 12
    assert [(r.users, r.pages, r.events_per_s) for r in rows[:3]] == [
        (1, 10, 100.0),
        (1, 10, 200.0),
        (1, 20, 100.0),
    ]


def test_fit_linear_recovers_slopes_and_intercept() -> None:
    points = [
        {"users": u, "links": n, "bytes": 5e6 + 300 * u + 40 * n}
        for u, n in [(1_000, 10_000), (4_000, 12_000), (2_000, 50_000), (6_000, 30_000)]
    ]
    fit = fit_linear(points, "bytes", ["users", "links"])
    assert fit.coef["users"] == pytest.approx(300)
    assert fit.coef["links"] == pytest.approx(40)
    assert fit.intercept == pytest.approx(5e6)
    assert fit.r2 == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fit_linear(points[:2], "bytes", ["users", "links"])
