"""Live experiments end to end: trainers, a Faust scorer, the broker and Redis, all real.

Champion and challenger each have their own trainer process (the challenger's started with
``streamrec trainer --challenger``); one scorer serves generated traffic, and the gate
decides on the judged views it sums in Redis.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from online_model.data.generate import generate
from streams.cli import main
from streams.experiment.assignment import arm_of
from streams.experiment.record import Experiment
from streams.experiment.store import ExperimentStore
from streams.io.producer import page_view
from streams.io.topics import ensure_topics
from streams.lifecycle.model_actions import experiment_outcomes
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.fixtures import StoreFactory
from tests.support.scorer import http_text, wait_ready
from tests.support.topics import produce_page_views, read_answers


def traffic(n_events: int, seed: int) -> list[dict[str, Any]]:
    """Generated page views (topics, links, sessions), stamped from now on."""
    now = int(time.time() * 1000)
    rows = generate(n_users=300, n_pages=150, n_events=n_events, seed=seed).rows()
    return [
        page_view(user, page, now + i, event_id=f"ev-{seed}-{i}")
        for i, (user, page, _, _) in enumerate(rows)
    ]


def metric(settings: Settings, name: str) -> float:
    """One sample of a scorer's /metrics."""
    for line in http_text(f"http://127.0.0.1:{settings.web_port}/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def has_version(store: SnapshotStore) -> bool:
    return store.current_version() is not None


def start_experiment(
    settings: Settings,
    env: dict[str, str],
    store_factory: StoreFactory,
    tmp_path: Path,
    champion_model: str,
    *start_args: str,
) -> tuple[list[ChildProcess], Experiment, ExperimentStore]:
    """Trainers of both arms learning the first wave, the experiment running, and a
    scorer serving it (the last of the processes)."""
    ensure_topics(settings)
    procs = [
        ChildProcess.streamrec(
            ["trainer", "--model", champion_model], env, tmp_path / "champion-trainer.log"
        )
    ]
    cli(env, "experiment", "start", *start_args)
    running = ExperimentStore(settings.redis_client(), settings.model_name).running()
    assert running is not None
    procs.append(
        ChildProcess.streamrec(["trainer", "--challenger"], env, tmp_path / "challenger.log")
    )
    wait_for(lambda: has_version(store_factory()), 60, "champion snapshot")
    wait_for(lambda: has_version(store_factory(running.challenger)), 60, "challenger snapshot")
    procs.append(ChildProcess.streamrec(["scorer"], env, tmp_path / "scorer.log"))
    return procs, running, ExperimentStore(settings.redis_client(), settings.model_name)


def stop_all(procs: list[ChildProcess]) -> None:
    for proc in reversed(procs):
        assert proc.stop() == 0, proc.output()[-3000:]


@pytest.mark.parametrize(
    ("champion", "challenger", "outcome"),
    [("popularity", "covisit", "promoted"), ("covisit", "popularity", "stopped")],
)
def test_the_gate_promotes_a_better_and_stops_a_worse_challenger(
    settings: Settings,
    settings_env: dict[str, str],
    store_factory: StoreFactory,
    tmp_path: Path,
    champion: str,
    challenger: str,
    outcome: str,
) -> None:
    first, rest = traffic(12_000, seed=5)[:3000], traffic(12_000, seed=5)[3000:]
    assert produce_page_views(settings, first).delivered == len(first)
    procs, running, experiments = start_experiment(
        settings,
        settings_env,
        store_factory,
        tmp_path,
        champion,
        "--challenger",
        challenger,
        "--share",
        "0.5",
        "--auto",
        "--min-judged",
        "300",
    )
    scorer = procs[-1]
    try:
        wait_ready(settings, scorer)
        for start in range(0, len(rest), 1500):
            wave = rest[start : start + 1500]
            assert produce_page_views(settings, wave).delivered == len(wave)
            time.sleep(1.0)
        wait_for(lambda: experiments.running() is None, 90, f"the gate to decide ({outcome})")
        (done,) = experiments.history()
        # The decision and its figures, beside the version each arm served then.
        assert done.decision is not None
        decided_on = done.decision["versions"]
        outcomes = {
            arm: experiment_outcomes(store_factory(ns)).get(decided_on[arm], [])
            for arm, ns in (("champion", running.champion), ("challenger", running.challenger))
        }
        # Traffic after the decision: served by the winner, nothing lost on the way.
        after = traffic(600, seed=6)
        assert produce_page_views(settings, after).delivered == len(after)
        produced = {v["event_id"] for v in first + rest + after}
        answers = read_answers(settings, produced, timeout=120)
        metrics = http_text(f"http://127.0.0.1:{settings.web_port}/metrics")
        status = cli(settings_env, "experiment", "status")
    finally:
        stop_all(procs)

    assert done.state == outcome, done.decision
    assert done.decision is not None and done.decision["by"] == "gate"
    fig = done.decision["figures"]
    assert min(fig["champion"]["judged"], fig["challenger"]["judged"]) >= 300
    low, high = fig["difference_hit@10"]["always_valid"]
    assert (low > 0) if outcome == "promoted" else (high < 0)
    assert f"{done.id}: {outcome} by gate" in status
    for arm, entries in outcomes.items():
        assert [(e["experiment"], e["arm"], e["by"]) for e in entries] == [(done.id, arm, "gate")]
        assert entries[0]["figures"] == fig
    assert "streamrec_experiment_gate_decisions 1.0" in metrics

    by_event = {r["event_id"]: r for r in answers.recommendations}
    assert not answers.lost  # every page view answered, before, during and after
    # One user, one arm: whatever the arm on a list, it is the user's hashed arm.
    arms_of_user: dict[str, set[str]] = {}
    for rec in answers.recommendations:
        if rec["arm"]:
            arms_of_user.setdefault(rec["user_id"], set()).add(rec["arm"])
    seen = [arm for arms in arms_of_user.values() for arm in arms]
    assert min(seen.count("champion"), seen.count("challenger")) >= 20, seen
    assert all(len(arms) == 1 for arms in arms_of_user.values())
    assert all(arm_of(u, running.id, 0.5) in arms for u, arms in arms_of_user.items())
    # After the decision every list comes from the winner, with no arm.
    winner = running.challenger if outcome == "promoted" else settings.model_name
    last = [by_event[v["event_id"]] for v in after[-200:]]
    assert {(r["model_name"], r["arm"]) for r in last} == {(winner, "")}
    assert experiments.serving() == winner


def test_shadow_mode_sends_only_champion_lists(
    settings: Settings,
    settings_env: dict[str, str],
    store_factory: StoreFactory,
    tmp_path: Path,
) -> None:
    views = traffic(6000, seed=8)
    assert produce_page_views(settings, views[:2000]).delivered == 2000
    procs, running, experiments = start_experiment(
        settings,
        settings_env,
        store_factory,
        tmp_path,
        "popularity",
        "--challenger",
        "covisit",
        "--share",
        "0.5",
        "--shadow",
    )
    scorer = procs[-1]

    def judged(arm: str) -> int:
        return experiments.counts(running.id)[arm].judged

    try:
        wait_ready(settings, scorer)
        assert produce_page_views(settings, views[2000:]).delivered == 4000
        wait_for(lambda: judged("challenger") >= 500, 90, "challenger lists judged")
        answers = read_answers(settings, {v["event_id"] for v in views}, timeout=90)
        counts = experiments.counts(running.id)
        wait_for(
            lambda: metric(settings, 'streamrec_experiment_judged{arm="challenger"}') >= 500,
            10,
            "the scorer's /metrics to show the judged views",
        )
        status = cli(settings_env, "experiment", "status", "--json")
    finally:
        stop_all(procs)
    assert not answers.lost
    served = {(r["model_name"], r["arm"]) for r in answers.recommendations}
    assert served <= {(settings.model_name, "champion"), (settings.model_name, "")}
    assert (settings.model_name, "champion") in served
    # Both judged; the unsent covisit lists would have hit more than popularity's.
    assert counts["champion"].judged > counts["challenger"].judged >= 500
    assert counts["challenger"].hit_rate > counts["champion"].hit_rate
    assert experiments.running() is not None  # shadow without --auto: nothing decided
    figures = json.loads(status)["experiment"]["figures"]
    assert figures["challenger"]["judged"] >= 500
    assert figures["difference_hit@10"]["difference"] > 0
