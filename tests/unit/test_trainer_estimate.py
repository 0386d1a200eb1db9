"""The trainer's quality estimate: judged on a sample of users, reported with its precision."""

from __future__ import annotations

import zlib

import pytest

from online_model.data.generate import generate
from online_model.models.covisit import Covisitation
from streams.trainer.quality_estimate import RollingHitRate, wilson_interval


def _judge(estimates: list[RollingHitRate], n_events: int = 60_000) -> None:
    """Every estimate judges the same model, event by event, before it learns."""
    model = Covisitation()
    for user, page, ts, _ in generate(n_users=3_000, n_pages=400, n_events=n_events, seed=3).rows():
        for est in estimates:
            est.before_learn(model, user, page)
        model.learn_one(user, page, x={"ts": ts})


def test_a_sampled_estimate_falls_within_its_interval_of_the_full_one() -> None:
    full = RollingHitRate(every=1, horizon=10**9)  # a plain mean over every judgement
    sampled = RollingHitRate(every=20, horizon=10**9)
    _judge([full, sampled])
    report = sampled.report()
    assert full.n_scored > 15 * sampled.n_scored > 0
    assert report["hit@10_low"] <= full.hit <= report["hit@10_high"]
    assert report["mrr@10_low"] <= full.mrr <= report["mrr@10_high"]
    # The sample is narrower than nothing and wider than the full count's interval.
    low, high = wilson_interval(full.hit, full.n_effective)
    assert 0 < high - low < report["hit@10_high"] - report["hit@10_low"] < 0.2


def test_the_same_users_are_followed_in_every_process() -> None:
    est = RollingHitRate(every=7)
    _judge([est], n_events=5_000)
    assert est._histories
    assert all(zlib.crc32(user.encode()) % 7 == 0 for user in est._histories)


def test_no_rate_is_reported_before_a_first_judgement() -> None:
    est = RollingHitRate(every=1)
    model = Covisitation()
    est.before_learn(model, "u", "a")  # a first view: nothing to judge it by
    assert est.report() == {"n_scored": 0.0, "n_effective": 0.0, "sample_every": 1.0}


def test_the_effective_sample_counts_every_judgement_then_about_two_horizons() -> None:
    est = RollingHitRate(horizon=100)
    for i in range(50):
        est._add(1 if i % 2 else None)
    assert est.n_effective == pytest.approx(50)
    for i in range(5_000):
        est._add(1 if i % 2 else None)
    # An exponentially weighted mean over a horizon h is as precise as 2h - 1 values.
    assert est.n_effective == pytest.approx(199, rel=0.01)
    assert est.hit == pytest.approx(0.5, abs=0.02)


def test_sampling_and_horizon_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RollingHitRate(every=0)
