"""Experiments without services: arm assignment, the record, statistics and the gate."""

from __future__ import annotations

import math
import random

import pytest

from online_model.errors import ConfigurationError
from streams.experiment.assignment import CHALLENGER, CHAMPION, arm_of, bucket
from streams.experiment.gate import PROMOTE, STOP, judge
from streams.experiment.record import Experiment, parse_challenger
from streams.experiment.statistics import ArmCounts, always_valid_halfwidth, difference

USERS = [f"user-{i}" for i in range(20_000)]


def test_a_user_keeps_the_same_arm_across_calls_and_processes() -> None:
    # Pinned values: changing the hash would move users of a running experiment.
    assert [round(bucket(u, "a1b2c3d4"), 6) for u in ("u1", "u2", "u3")] == [
        0.0333,
        0.035052,
        0.270679,
    ]
    first = [arm_of(u, "a1b2c3d4", 0.3) for u in USERS]
    assert first == [arm_of(u, "a1b2c3d4", 0.3) for u in USERS]


def test_the_assignment_is_the_same_in_a_fresh_interpreter() -> None:
    import subprocess
    import sys

    code = (
        "from streams.experiment.assignment import bucket;"
        "print(repr([bucket(f'user-{i}', 'salt') for i in range(5)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr([bucket(f"user-{i}", "salt") for i in range(5)])


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_the_challenger_arm_holds_the_share_of_users(share: float) -> None:
    challengers = sum(arm_of(u, "5eed", share) == CHALLENGER for u in USERS)
    expected = share * len(USERS)
    assert abs(challengers - expected) < 4 * math.sqrt(len(USERS) * share * (1 - share))


def test_a_larger_share_only_adds_users_to_the_challenger() -> None:
    small = {u for u in USERS if arm_of(u, "5eed", 0.1) == CHALLENGER}
    large = {u for u in USERS if arm_of(u, "5eed", 0.5) == CHALLENGER}
    assert small < large


def test_another_salt_reshuffles_users() -> None:
    a = {u for u in USERS if arm_of(u, "one", 0.5) == CHALLENGER}
    b = {u for u in USERS if arm_of(u, "two", 0.5) == CHALLENGER}
    overlap = len(a & b) / len(a)
    assert 0.4 < overlap < 0.6  # independent halves overlap by about half


def test_parse_challenger() -> None:
    assert parse_challenger("covisit") == ("covisit", {})
    assert parse_challenger("covisit:window=3") == ("covisit", {"window": "3"})
    with pytest.raises(ConfigurationError):
        parse_challenger(":window=3")
    with pytest.raises(ConfigurationError):
        parse_challenger("covisit:window=3,oops")


def test_record_round_trip_and_refusals() -> None:
    exp = Experiment(id="ab12", champion="default", challenger="default.xab12", share=0.25)
    assert Experiment.from_json(exp.to_json()) == exp
    with pytest.raises(ConfigurationError, match="share"):
        Experiment(id="x", champion="a", challenger="b", share=0.0)
    with pytest.raises(ConfigurationError, match="share"):
        Experiment(id="x", champion="a", challenger="b", share=float("nan"))
    with pytest.raises(ConfigurationError, match="differ"):
        Experiment(id="x", champion="a", challenger="a", share=0.5)


def counts(judged: int, hit_rate: float, rank: int = 1) -> ArmCounts:
    arm = ArmCounts()
    hits = round(judged * hit_rate)
    for i in range(judged):
        arm.add(rank if i < hits else None)
    return arm


def test_arm_counts_keep_what_a_variance_needs() -> None:
    arm = ArmCounts()
    for rank in (1, 2, None, 4):
        arm.add(rank)
    assert (arm.judged, arm.hits) == (4, 3)
    assert arm.mrr == pytest.approx((1 + 0.5 + 0.25) / 4)
    assert arm.variance("mrr") == pytest.approx((1 + 0.25 + 0.0625) / 4 - arm.mrr**2)
    assert ArmCounts.from_fields(arm.as_fields()) == arm
    total = ArmCounts()
    total.merge(arm)
    total.merge(arm)
    assert (total.judged, total.rr_squares) == (8, 2 * arm.rr_squares)


def test_the_always_valid_interval_is_wider_than_the_fixed_one() -> None:
    diff = difference(counts(2000, 0.10), counts(2000, 0.13), "hit", 0.05, 0.05)
    assert diff.estimate == pytest.approx(0.03)
    assert diff.always_valid[0] < diff.ci95[0] < diff.estimate < diff.ci95[1] < diff.always_valid[1]
    assert diff.se == pytest.approx(math.sqrt(0.09 / 2000 + 0.13 * 0.87 / 2000))


def test_the_confidence_sequence_closes_in_as_views_accumulate() -> None:
    widths = [always_valid_halfwidth(0.2 / n, 0.05, 0.05) for n in (1000, 10_000, 100_000)]
    assert widths == sorted(widths, reverse=True)
    assert widths[-1] < 0.01


def exp(**kw: object) -> Experiment:
    base = {"id": "e1", "champion": "a", "challenger": "b", "share": 0.5, "min_judged": 500}
    return Experiment(**{**base, **kw})  # type: ignore[arg-type]


def test_the_gate_waits_for_the_minimum_of_judged_views() -> None:
    arms = {CHAMPION: counts(400, 0.05), CHALLENGER: counts(400, 0.30)}
    verdict = judge(exp(), arms, 10)
    assert verdict.action is None and "waiting" in verdict.reason


def test_the_gate_promotes_a_clearly_better_and_stops_a_clearly_worse_challenger() -> None:
    better = judge(exp(), {CHAMPION: counts(2000, 0.08), CHALLENGER: counts(2000, 0.25)}, 10)
    assert better.action == PROMOTE
    assert better.figures["challenger"]["judged"] == 2000
    worse = judge(exp(), {CHAMPION: counts(2000, 0.25), CHALLENGER: counts(2000, 0.08)}, 10)
    assert worse.action == STOP
    even = judge(exp(), {CHAMPION: counts(2000, 0.20), CHALLENGER: counts(2000, 0.205)}, 10)
    assert even.action is None


def test_peeking_after_every_view_rarely_promotes_an_equal_challenger() -> None:
    # A/A: both arms hit 20 %. Looking after every 50 views up to 20k per arm, the
    # always-valid gate must decide wrongly in at most about alpha of the runs; a fixed
    # 95 % interval looked at that often is wrong far more often.
    rng = random.Random(3)
    runs, wrong_gate, wrong_fixed = 60, 0, 0
    for _ in range(runs):
        a, b = ArmCounts(), ArmCounts()
        gate_fired = fixed_fired = False
        for step in range(400):
            for _ in range(50):
                a.add(1 if rng.random() < 0.2 else None)
                b.add(1 if rng.random() < 0.2 else None)
            if step < 10:
                continue
            d = difference(a, b, "hit", 0.05, 0.05)
            gate_fired |= d.always_valid[0] > 0 or d.always_valid[1] < 0
            fixed_fired |= d.ci95[0] > 0 or d.ci95[1] < 0
        wrong_gate += gate_fired
        wrong_fixed += fixed_fired
    assert wrong_gate <= 0.1 * runs
    assert wrong_fixed > 2 * wrong_gate


class _Pipe:
    """Records what a MULTI pipeline would run."""

    def __init__(self) -> None:
        self.hash: dict[str, dict[str, str]] = {}

    def hset(self, key: str, name: str, value: str) -> None:
        self.hash.setdefault(key, {})[name] = value

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return {k.encode(): v.encode() for k, v in self.hash.get(key, {}).items()}


def test_the_outcome_goes_beside_each_arms_version_as_plain_json() -> None:
    import dataclasses

    from streams.experiment import results
    from streams.experiment.gate import figures
    from streams.state.keys import ModelKeys

    running = Experiment("e1", "m", "m.cand", share=0.5)
    arms = {CHAMPION: ArmCounts(), CHALLENGER: ArmCounts()}
    arms[CHALLENGER].add(1)  # nobody judged in the champion arm
    shown = figures(running, arms, 10)
    finished = dataclasses.replace(
        running, state="stopped", decision={"action": STOP, "by": "operator", "figures": shown}
    )
    pipe = _Pipe()
    no_challenger = {CHAMPION: 4, CHALLENGER: None}
    results.record(pipe, ModelKeys("m"), finished, no_challenger)
    assert list(pipe.hash) == [ModelKeys("m").experiment_results]
    pipe.hash[ModelKeys("m").experiment_results]["bad:e0"] = "not json"
    (entry,) = results.by_version(pipe, ModelKeys("m"))[4]
    assert (entry["arm"], entry["action"], entry["challenger"]) == (
        CHAMPION,
        STOP,
        {"namespace": "m.cand", "version": None},
    )
    assert entry["figures"][CHAMPION] == {"judged": 0, "hit@10": 0.0, "mrr@10": 0.0}
    assert entry["figures"][CHALLENGER]["hit@10"] == 1.0
    # What JSON cannot hold (an interval of nothing judged) is stored as null, not NaN.
    shown["difference_hit@10"]["ci95"] = [float("nan"), float("inf")]
    results.record(pipe, ModelKeys("m"), finished, {CHAMPION: 5})
    (later,) = results.by_version(pipe, ModelKeys("m"))[5]
    assert later["figures"]["difference_hit@10"]["ci95"] == [None, None]
