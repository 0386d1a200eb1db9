"""What is served and why (streams/state/serving.py), and consumer groups per model name."""

from __future__ import annotations

import dataclasses

from streams.settings import Settings
from streams.state.serving import ServedModel, describe


def test_the_reason_names_the_last_change_while_it_still_holds() -> None:
    promoted = {"action": "experiment", "experiment": "ab12", "namespace": "m.xab12", "at": 0}
    served = ServedModel("m", "m.xab12", 70, False, {**promoted, "version": 65})
    # The promoted challenger follows its trainer: newer versions are still "promoted".
    assert served.reason == "promoted by experiment ab12 at 1970-01-01T00:00:00Z"
    assert served.promoted
    rolled = {"action": "rollback", "by": "cli", "namespace": "m", "version": 7, "at": 0}
    assert ServedModel("m", "m", 7, True, rolled).reason.startswith("rolled back by cli")
    # An operator's promote since (not logged here) or a change about another namespace.
    assert ServedModel("m", "m", 5, True, rolled).reason == "pinned by an operator"
    assert ServedModel("m", "m", 9, False, promoted).reason == "following its trainer"
    assert ServedModel("m", "m", None, False).reason.startswith("no snapshot yet")


def test_describe_every_action() -> None:
    assert describe({"action": "promote", "by": "api:ops", "at": 0}).startswith(
        "promoted by api:ops"
    )
    assert describe({"action": "follow", "by": "cli", "at": 0}).startswith(
        "following its trainer since"
    )


def test_scorers_of_two_model_names_never_share_a_group_by_default() -> None:
    default, hybrid = Settings(), Settings(model_name="hybrid")
    assert (default.scorer_group, default.trainer_group) == (
        "streamrec-scorer",
        "streamrec-trainer",
    )
    assert (hybrid.scorer_group, hybrid.trainer_group) == (
        "streamrec-scorer.hybrid",
        "streamrec-trainer.hybrid",
    )
    # Told a group, it is used as given; from the environment likewise.
    assert Settings(model_name="hybrid", scorer_group="g").scorer_group == "g"
    env = Settings.from_env({"STREAMREC_MODEL_NAME": "x", "STREAMREC_SCORER_GROUP": "s"})
    assert (env.scorer_group, env.trainer_group) == ("s", "streamrec-trainer.x")
    # A copy for another namespace keeps the groups it was given.
    assert dataclasses.replace(default, model_name="other").scorer_group == "streamrec-scorer"


def test_the_trainer_group_of_a_namespace() -> None:
    settings = Settings(model_name="m")
    assert settings.trainer_group_of("m") == "streamrec-trainer.m"
    # The group a trainer started with STREAMREC_MODEL_NAME=m.xab takes: the same.
    assert settings.trainer_group_of("m.xab") == "streamrec-trainer.m.xab"
    assert Settings(model_name="m.xab").trainer_group == "streamrec-trainer.m.xab"
