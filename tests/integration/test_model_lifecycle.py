"""The model lifecycle as an operator drives it: experiment -> promotion -> rollback.

Real processes on the embedded broker and Redis: the champion's trainer, the
challenger's trainer, a scorer; the CLI as a user types it. After each move, REST,
``batch-score``, ``models list``, ``/readyz`` and the console's state must name the same
namespace and version, and a rollback must change what REST serves within 2 s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from streams.cli import main
from streams.services.processes import wait_for
from streams.settings import Settings
from tests.integration.test_experiment import start_experiment, stop_all, traffic
from tests.support.fixtures import StoreFactory
from tests.support.scorer import http_json, http_text, wait_ready
from tests.support.topics import produce_page_views

USERS = [f"u{i}" for i in range(0, 300, 37)]


def run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def rest(settings: Settings, user: str) -> dict[str, Any]:
    status, body = http_json(f"http://127.0.0.1:{settings.web_port}/recommendations/{user}")
    assert status == 200, body
    return dict(body)


def batch(env: dict[str, str], tmp_path: Path) -> list[dict[str, Any]]:
    users = tmp_path / "users.txt"
    users.write_text("\n".join(USERS) + "\n")
    out = tmp_path / "batch.jsonl"
    run(env, "batch-score", "--users", str(users), "--output", str(out))
    return [json.loads(line) for line in out.read_text().splitlines()]


def listed_served(env: dict[str, str]) -> tuple[str, int]:
    rows = json.loads(run(env, "models", "list", "--json"))
    ((namespace, version),) = [(r["namespace"], r["version"]) for r in rows if r["is_served"]]
    return namespace, version


def assert_all_serve(
    settings: Settings, env: dict[str, str], tmp_path: Path, namespace: str, version: int
) -> None:
    """REST, batch-score, models list, /readyz and the console state agree."""
    base = f"http://127.0.0.1:{settings.web_port}"
    answers = {user: rest(settings, user) for user in USERS}
    assert {(a["model_name"], a["model_version"]) for a in answers.values()} == {
        (namespace, version)
    }
    rows = batch(env, tmp_path)
    assert {(r["model_name"], r["model_version"]) for r in rows} == {(namespace, version)}
    for row in rows:  # exactly what REST gives each user
        assert row["items"] == answers[row["user_id"]]["items"], row["user_id"]
    assert listed_served(env) == (namespace, version)
    _, ready = http_json(f"{base}/readyz")
    assert (ready["model_namespace"], ready["model_version"]) == (namespace, version)
    _, console = http_json(f"{base}/console/state")
    assert (console["serving"]["namespace"], console["serving"]["version"]) == (
        namespace,
        version,
    )
    assert console["served"]["version"] == version
    served_rows = [r["version"] for r in console["versions"] if r["is_served"]]
    assert served_rows == [version]
    metrics = http_text(f"{base}/metrics")
    assert (
        f'streamrec_model_served_info{{model_name="{settings.model_name}",'
        f'namespace="{namespace}"}} 1.0' in metrics
    )
    assert f"streamrec_model_version {version}.0" in metrics


def rest_serves_within(settings: Settings, namespace: str, version: int, seconds: float) -> None:
    started = time.monotonic()

    def serves() -> bool:
        answer = rest(settings, USERS[0])
        return (answer["model_name"], answer["model_version"]) == (namespace, version)

    wait_for(
        serves,
        seconds,
        f"REST to serve {namespace} version {version}",
    )
    assert time.monotonic() - started <= seconds


def settled(store: Any) -> int:
    """The current version once it stopped moving for 2 s (its trainer has learned
    everything produced)."""
    last: list[Any] = [None, time.monotonic()]

    def still() -> bool:
        now = store.current_version()
        if now != last[0]:
            last[:] = [now, time.monotonic()]
        return now is not None and time.monotonic() - last[1] >= 2.0

    wait_for(still, 60, f"{store.model_name} to stop publishing")
    return int(last[0])


def test_rollback_after_a_gate_promotion_serves_what_was_served_before(
    settings: Settings,
    settings_env: dict[str, str],
    store_factory: StoreFactory,
    tmp_path: Path,
) -> None:
    env = settings_env
    events = traffic(12_000, seed=5)
    assert produce_page_views(settings, events[:3000]).delivered == 3000
    procs, running, experiments = start_experiment(
        settings,
        env,
        store_factory,
        tmp_path,
        "popularity",
        *("--challenger", "covisit", "--share", "0.5", "--auto", "--min-judged", "300"),
    )
    scorer = procs[-1]
    champion, challenger = store_factory(), store_factory(running.challenger)
    try:
        wait_ready(settings, scorer)
        for start in range(3000, len(events), 1500):
            if experiments.running() is None:
                break
            wave = events[start : start + 1500]
            assert produce_page_views(settings, wave).delivered == len(wave)
            time.sleep(1.0)
        wait_for(lambda: experiments.running() is None, 90, "the gate to decide")
        (done,) = experiments.history()
        assert done.state == "promoted", done.decision
        assert done.decision is not None
        before = done.decision["versions"]["champion"]
        # The champion's trainer keeps learning, but what it served is kept (pinned).
        assert champion.current_version() == before and champion.is_pinned()

        promoted = settled(challenger)
        rest_serves_within(settings, running.challenger, promoted, 5)
        assert_all_serve(settings, env, tmp_path, running.challenger, promoted)
        listed = run(env, "models", "list")
        assert listed.splitlines()[0].startswith(
            f"model {settings.model_name} serves {running.challenger} version {promoted} "
            f"(promoted by experiment {running.id}"
        )

        # The rollback serves again what was served before the promotion.
        rolled = run(env, "models", "rollback")
        assert f"previous={running.challenger}:{promoted}" in rolled
        assert f"current={before} pinned=true" in rolled
        rest_serves_within(settings, settings.model_name, before, 2)
        assert_all_serve(settings, env, tmp_path, settings.model_name, before)

        # A manual promotion across namespaces, and its rollback, the same way.
        run(env, "models", "promote", str(promoted), "--namespace", running.challenger)
        rest_serves_within(settings, running.challenger, promoted, 2)
        assert_all_serve(settings, env, tmp_path, running.challenger, promoted)
        assert challenger.is_pinned()
        run(env, "models", "rollback")
        rest_serves_within(settings, settings.model_name, before, 2)
        assert_all_serve(settings, env, tmp_path, settings.model_name, before)

        # With no promotion left to undo, rollback steps back within the namespace.
        older = max(v for v in champion.versions() if v < before)
        assert f"current={older} pinned=true" in run(env, "models", "rollback")
        rest_serves_within(settings, settings.model_name, older, 2)
    finally:
        stop_all(procs)


def test_a_promotion_that_cannot_take_effect_fails(
    settings: Settings, settings_env: dict[str, str], store_factory: StoreFactory
) -> None:
    from tests.support.snapshots import popularity_on

    other = f"{settings.model_name}.xother"
    version = store_factory(other).publish(popularity_on("B"))
    store_factory().publish(popularity_on("A"))
    # A running experiment: serving cannot move to another namespace under it.
    run(settings_env, "experiment", "start", "--challenger", "covisit")
    refused = CliRunner().invoke(
        main, ["models", "promote", str(version), "--namespace", other], env=settings_env
    )
    assert refused.exit_code == 2 and "experiment is running" in refused.stderr
    run(settings_env, "experiment", "stop")
    # Nothing to undo and nothing older: a clear refusal, never exit 0.
    nothing = CliRunner().invoke(main, ["models", "rollback"], env=settings_env)
    assert nothing.exit_code == 2 and "no verifiable version older" in nothing.stderr
    assert listed_served(settings_env)[0] == settings.model_name
