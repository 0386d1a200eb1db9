"""The scoring core during an experiment: split and shadow, with in-memory models."""

from __future__ import annotations

import time

from online_model.models.popularity import DecayedPopularity
from streams.experiment.assignment import arm_of
from streams.experiment.record import Experiment
from streams.io.codec import PAGE_VIEW, RECOMMENDATION, AvroCodec
from streams.io.dlq import RawMessage
from streams.io.producer import page_view
from streams.scorer.core import ScoringCore
from streams.scorer.experiment_routing import ArmRouting
from streams.scorer.model_holder import ModelHolder, Served
from streams.state.history import UserState

PV = AvroCodec.bundled(PAGE_VIEW)
REC = AvroCodec.bundled(RECOMMENDATION)
USERS = [f"u{i}" for i in range(200)]


def holder_knowing(prefix: str, version: int) -> ModelHolder:
    model = DecayedPopularity()
    for page in range(20):
        model.learn_one("someone", f"{prefix}{page}")
    holder = ModelHolder()
    holder.current = Served(model, version, time.time())
    return holder


def batch() -> list[RawMessage]:
    return [
        RawMessage("pv", 0, i, u.encode(), PV.encode(page_view(u, "a3", 1000, event_id=f"e{i}")))
        for i, u in enumerate(USERS)
    ]


def core_in(experiment: Experiment | None) -> ScoringCore:
    core = ScoringCore(holder_knowing("a", 4), "m")
    if experiment is not None:
        core.routing = ArmRouting(experiment, holder_knowing("b", 9))
    return core


def experiment(shadow: bool = False) -> Experiment:
    return Experiment(id="s1", champion="m", challenger="m.x", share=0.5, shadow=shadow)


def test_without_an_experiment_the_arm_is_empty() -> None:
    core = core_in(None)
    views, _ = core.decode(batch())
    out = core.score(views, UserState())
    assert {REC.decode(v)["arm"] for _, v in out.recommendations} == {""}
    assert out.arms is None


def test_split_serves_each_user_the_model_of_their_arm_and_judges_per_arm() -> None:
    core = core_in(experiment())
    views, _ = core.decode(batch())
    # Every user was served a list before: half of them held the page viewed now.
    served = {u: (["a3"] if i % 2 else ["zz"]) for i, u in enumerate(USERS)}
    out = core.score(views, UserState(served=dict(served)))
    recs = [REC.decode(v) for _, v in out.recommendations]
    arms = {u: arm_of(u, "s1", 0.5) for u in USERS}
    assert 60 < sum(a == "challenger" for a in arms.values()) < 140
    for rec in recs:
        arm = arms[rec["user_id"]]
        assert rec["arm"] == arm
        prefix, name, version = ("b", "m.x", 9) if arm == "challenger" else ("a", "m", 4)
        assert all(item["page_id"].startswith(prefix) for item in rec["items"])
        assert (rec["model_name"], rec["model_version"]) == (name, version)
    assert out.arms is not None
    for arm in ("champion", "challenger"):
        users = [u for u in USERS if arms[u] == arm]
        assert out.arms[arm].judged == len(users)
        assert out.arms[arm].hits == sum(served[u] == ["a3"] for u in users)
    assert out.update.shadow_served == {}


def test_shadow_sends_only_champion_lists_and_judges_the_unsent_ones() -> None:
    core = core_in(experiment(shadow=True))
    views, _ = core.decode(batch())
    arms = {u: arm_of(u, "s1", 0.5) for u in USERS}
    challengers = [u for u in USERS if arms[u] == "challenger"]
    # The challenger's unsent lists held the page for every challenger-arm user.
    state = UserState(served={u: ["zz"] for u in USERS}, shadow_served={u: ["a3"] for u in USERS})
    out = core.score(views, state)
    recs = [REC.decode(v) for _, v in out.recommendations]
    assert {r["arm"] for r in recs} == {"champion"}
    assert all(i["page_id"].startswith("a") for r in recs for i in r["items"])
    assert set(out.update.shadow_served) == set(challengers)
    assert all(p.startswith("b") for items in out.update.shadow_served.values() for p in items)
    assert out.arms is not None
    assert (out.arms["champion"].judged, out.arms["champion"].hits) == (len(USERS), 0)
    assert out.arms["challenger"].judged == out.arms["challenger"].hits == len(challengers)
