"""``streamrec experiment`` on a real Redis: start, status, stop, promote, refusals."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import Snapshot, SnapshotMeta
from streams.cli import main
from streams.experiment.statistics import ArmCounts
from streams.experiment.store import ExperimentStore
from streams.settings import Settings
from streams.trainer.run import challenger_training
from tests.support.fixtures import StoreFactory


def arm_counts(ranks: list[int | None]) -> ArmCounts:
    counts = ArmCounts()
    for rank in ranks:
        counts.add(rank)
    return counts


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def test_start_status_stop(settings: Settings, settings_env: dict[str, str]) -> None:
    started = run(
        settings_env, "experiment", "start", "--challenger", "covisit:window=3", "--share", "0.25"
    )
    assert started.exit_code == 0, started.output
    experiments = ExperimentStore(settings.redis_client(), settings.model_name)
    running = experiments.running()
    assert running is not None
    assert (running.model, running.params, running.share) == ("covisit", {"window": "3"}, 0.25)
    assert running.challenger == f"{settings.model_name}.x{running.id}"
    assert "--challenger" in started.output

    again = run(settings_env, "experiment", "start", "--challenger", "popularity")
    assert again.exit_code == 2 and f"experiment {running.id} is already running" in again.output

    status = run(settings_env, "experiment", "status", "--json")
    body = json.loads(status.output)
    assert body["experiment"]["id"] == running.id
    assert body["experiment"]["challenger_version"] is None
    assert body["experiment"]["figures"]["champion"]["judged"] == 0
    text = run(settings_env, "experiment", "status").output
    assert "waiting for the challenger's first snapshot" in text

    # The challenger's trainer is configured from the record: its namespace and group.
    trained, model, params = challenger_training(settings)
    assert (trained.model_name, model, params) == (running.challenger, "covisit", {"window": "3"})
    assert trained.trainer_group != settings.trainer_group

    refused = run(settings_env, "experiment", "stop", "--promote")
    assert refused.exit_code == 2 and "no snapshot yet" in refused.output
    stopped = run(settings_env, "experiment", "stop")
    assert stopped.exit_code == 0, stopped.output
    assert experiments.running() is None
    (done,) = experiments.history()
    assert (done.id, done.state, done.decision and done.decision["by"]) == (
        running.id,
        "stopped",
        "operator",
    )
    assert experiments.serving() == settings.model_name
    assert run(settings_env, "experiment", "stop").exit_code == 2


def test_a_stored_version_as_challenger_and_promotion(
    settings: Settings, settings_env: dict[str, str], store_factory: StoreFactory
) -> None:
    model = DecayedPopularity()
    model.learn_one("u1", "p1")
    champion = store_factory()
    version = champion.publish(
        Snapshot(SnapshotMeta("x", origin="replay", offsets={"pv": {0: 7}}), model)
    )
    cand = f"{settings.model_name}.cand"  # the test's own namespace
    started = run(settings_env, "experiment", "start", "--version", str(version), "--name", cand)
    assert started.exit_code == 0, started.output
    challenger = store_factory(model_name=cand)
    copied = challenger.latest(origin="trainer")  # what the challenger's trainer resumes from
    assert copied is not None and copied.meta.offsets == {"pv": {0: 7}}

    # Judged views from the scorers: the challenger hits 3 of 4, the champion 1 of 4.
    experiments = ExperimentStore(settings.redis_client(), settings.model_name)
    running = experiments.running()
    assert running is not None
    experiments.add_counts(
        running.id,
        {"champion": arm_counts([1, None, None, None]), "challenger": arm_counts([1, 2, None, 1])},
    )
    promoted = run(settings_env, "experiment", "stop", "--promote")
    assert promoted.exit_code == 0, promoted.output
    assert experiments.serving() == cand

    # The promoted version's metadata carries the decision and both arms' figures.
    cand_version = challenger.current_version()
    cand_env = {**settings_env, "STREAMREC_MODEL_NAME": cand}
    rows = json.loads(run(cand_env, "models", "list", "--json").output)
    (entry,) = next(r for r in rows if r["version"] == cand_version)["experiments"]
    assert (entry["experiment"], entry["arm"], entry["action"], entry["by"]) == (
        running.id,
        "challenger",
        "promote",
        "operator",
    )
    assert entry["champion"] == {"namespace": settings.model_name, "version": version}
    assert entry["challenger"] == {"namespace": cand, "version": cand_version}
    fig = entry["figures"]
    assert fig["challenger"] == {"judged": 4, "hit@10": 0.75, "mrr@10": 0.625}
    assert fig["champion"] == {"judged": 4, "hit@10": 0.25, "mrr@10": 0.25}
    diff = fig["difference_hit@10"]
    assert diff["difference"] == 0.5 and diff["ci95"][0] < 0.5 < diff["ci95"][1]
    shown = json.loads(run(cand_env, "models", "show", str(cand_version)).output)
    assert shown["experiments"] == [entry]
    table = run(cand_env, "models", "list").output
    assert f"exp {running.id} promote as challenger: hit@10 0.7500 (n=4)" in table
    # What is served now, for the model name: the challenger's namespace.
    served = json.loads(run(settings_env, "models", "list", "--json").output)
    assert [r["version"] for r in served if r["is_served"]] == [cand_version]
    assert {r["namespace"] for r in served} == {cand}
    # The champion's served version keeps the same outcome, as the arm that lost.
    left = run(settings_env, "models", "list", "--json", "--namespace", settings.model_name)
    (kept,) = json.loads(left.output)[0]["experiments"]
    assert kept["arm"] == "champion" and kept["figures"] == fig
    (done,) = experiments.history()
    assert done.decision is not None
    assert done.decision["versions"] == {"champion": version, "challenger": cand_version}
    # The next experiment challenges what is served now.
    assert run(settings_env, "experiment", "start", "--challenger", "covisit").exit_code == 0
    nxt = experiments.running()
    assert nxt is not None and nxt.champion == cand


def test_bad_requests_are_refused_with_a_message(settings_env: dict[str, str]) -> None:
    cases = {
        ("experiment", "start"): "exactly one of --challenger",
        ("experiment", "start", "--challenger", "covisit", "--version", "3"): "exactly one",
        ("experiment", "start", "--challenger", "nosuchmodel"): "unknown model",
        ("experiment", "start", "--challenger", "covisit:nosuch=1"): "no parameter",
        ("experiment", "start", "--challenger", "covisit", "--share", "0"): "--share",
        ("experiment", "start", "--version", "999"): "999",
        ("trainer", "--challenger"): "no experiment is running",
    }
    for args, message in cases.items():
        result = run(settings_env, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_an_ensemble_challenger_by_name_and_weights(
    settings: Settings, settings_env: dict[str, str]
) -> None:
    bad = run(settings_env, "experiment", "start", "--challenger", "blend", "--param", "models=x:1")
    assert bad.exit_code == 2 and "unknown model 'x'" in bad.output, bad.output
    started = run(
        settings_env,
        "experiment",
        "start",
        "--challenger",
        "blend",
        "--param",
        "models=covisit:1.0,mf:0.5",
        "--shadow",
    )
    assert started.exit_code == 0, started.output
    _, model, params = challenger_training(settings)
    assert (model, params) == ("blend", {"models": "covisit:1.0,mf:0.5"})


def test_redis_down_is_one_line_not_a_traceback(settings_env: dict[str, str]) -> None:
    env = {**settings_env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    for args in (("experiment", "status"), ("experiment", "stop")):
        result = run(env, *args)
        assert result.exit_code == 2 and "error: redis unavailable" in result.output, result.output
