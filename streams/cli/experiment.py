"""``streamrec experiment``: try a challenger model on a share of live traffic.

One experiment at a time per champion namespace (``STREAMREC_MODEL_NAME``). Scorers read
the record within a poll interval and split users by a salted hash of ``user_id``; the
challenger learns online in its own namespace, trained by ``streamrec trainer
--challenger``. ``status`` shows per-arm served quality and the comparison; ``stop
--promote`` (or the ``--auto`` gate) makes the challenger the served model, without a
restart.
"""

from __future__ import annotations

import json
from typing import Any

import click

from online_model.errors import ConfigurationError
from online_model.registry import make_model
from streams.cli.options import Count, json_option, parse_params, setting_option
from streams.experiment.gate import PROMOTE, STOP, figures, judge
from streams.experiment.record import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_JUDGED,
    DEFAULT_TAU,
    Experiment,
    new_id,
    parse_challenger,
)
from streams.experiment.store import ExperimentStore, copy_as_challenger
from streams.settings import Settings
from streams.state.serving import cross_family
from streams.state.snapshot_store import SnapshotStore
from streams.wiring import store_for


def _settings_and_store() -> tuple[Settings, ExperimentStore]:
    settings = Settings.from_env()
    return settings, ExperimentStore(settings.redis_client(), settings.model_name)


def _store_of(settings: Settings, namespace: str) -> SnapshotStore:
    return store_for(settings)(namespace)


@click.group("experiment")
def command() -> None:
    """Champion/challenger experiments on live traffic (start, status, stop)."""


@command.command("start")
@setting_option(
    "--challenger",
    "challenger_text",
    setting="experiment_challenger",
    default=None,
    metavar="MODEL[:KEY=VALUE,...]",
    help="The challenger: a model the challenger's trainer builds and keeps learning, "
    "e.g. covisit or covisit:window=3 or blend with --param models=covisit:1,mf:0.5.",
)
@setting_option(
    "--param",
    "params",
    setting="experiment_params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A challenger constructor parameter; repeat it (the variable is space-separated).",
)
@setting_option(
    "--version",
    "from_version",
    setting="experiment_version",
    type=Count(1),
    default=None,
    help="The challenger: this version of the champion's namespace (e.g. a replay "
    "candidate), copied into the challenger's namespace, where its trainer resumes from it.",
)
@setting_option(
    "--share",
    setting="experiment_share",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.1,
    show_default=True,
    help="Share of users in the challenger arm.",
)
@setting_option(
    "--shadow",
    setting="experiment_shadow",
    is_flag=True,
    default=False,
    help="Serve every user the champion; compute and judge the challenger's list for the "
    "challenger arm's users without sending it.",
)
@setting_option(
    "--auto",
    setting="experiment_auto",
    is_flag=True,
    default=False,
    help="Let the gate promote or stop the challenger.",
)
@setting_option(
    "--min-judged",
    setting="experiment_min_judged",
    type=Count(1),
    default=DEFAULT_MIN_JUDGED,
    show_default=True,
    help="Judged views per arm before the gate decides.",
)
@setting_option(
    "--alpha",
    setting="experiment_alpha",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=DEFAULT_ALPHA,
    show_default=True,
    help="Error rate of the gate's always-valid test.",
)
@setting_option(
    "--tau",
    setting="experiment_tau",
    type=click.FloatRange(0.0, min_open=True),
    default=DEFAULT_TAU,
    show_default=True,
    help="Scale of hit-rate differences the gate's test is tuned to detect.",
)
@setting_option(
    "--name",
    "namespace",
    setting="experiment_name",
    default=None,
    help="Namespace of the challenger's snapshots. [default: <champion>.x<id>]",
)
def start(
    challenger_text: str | None,
    params: tuple[str, ...],
    from_version: int | None,
    share: float,
    shadow: bool,
    auto: bool,
    min_judged: int,
    alpha: float,
    tau: float,
    namespace: str | None,
) -> None:
    """Start an experiment: the challenger serves --share of users (or shadows them)."""
    if (challenger_text is None) == (from_version is None):
        raise ConfigurationError("give exactly one of --challenger MODEL and --version N")
    settings, experiments = _settings_and_store()
    champion = experiments.serving()
    experiment_id = new_id()
    challenger = namespace or f"{champion}.x{experiment_id}"
    if not experiments.keys.same_slot(challenger):
        raise ConfigurationError(cross_family(champion, challenger))
    model, model_params = "", dict[str, str]()
    if challenger_text is not None:
        model, model_params = parse_challenger(challenger_text)
        model_params.update(parse_params(params))
        # An unknown model or parameter is refused now, not by the trainer later.
        make_model(model, model_params)
    experiment = Experiment(
        id=experiment_id,
        champion=champion,
        challenger=challenger,
        share=share,
        shadow=shadow,
        model=model,
        params=model_params,
        from_version=from_version,
        auto=auto,
        min_judged=min_judged,
        alpha=alpha,
        tau=tau,
    )
    if from_version is not None:
        target = _store_of(settings, challenger)
        if target.current_version() is not None:
            raise ConfigurationError(f"namespace {challenger} already holds snapshots")
        copied = copy_as_challenger(_store_of(settings, champion), from_version, target)
        click.echo(f"copied {champion} version {from_version} to {challenger} version {copied}")
    experiments.start(experiment)
    mode = "shadow" if shadow else "split"
    click.echo(
        f"experiment {experiment_id} started: champion {champion}, challenger {challenger} "
        f"({model or f'version {from_version}'}), share {share:g}, {mode}, "
        f"gate {'auto' if auto else 'manual'}"
    )
    click.echo(
        "the challenger arm is served once its first snapshot exists; train it with: "
        f"STREAMREC_MODEL_NAME={settings.model_name} streamrec trainer --challenger"
    )


def _status(settings: Settings, experiments: ExperimentStore) -> dict[str, Any]:
    serving, running = experiments.read()
    out: dict[str, Any] = {"namespace": settings.model_name, "serving": serving}
    if running is None:
        out["experiment"] = None
        out["finished"] = [json.loads(e.to_json()) for e in experiments.history(5)]
        return out
    arms = experiments.counts(running.id)
    verdict = judge(running, arms, settings.k)
    challenger_version = _store_of(settings, running.challenger).current_version()
    out["experiment"] = {
        **json.loads(running.to_json()),
        "challenger_version": challenger_version,
        "figures": verdict.figures,
        "gate": {"auto": running.auto, "would": verdict.action, "reason": verdict.reason},
    }
    return out


def _print_status(status: dict[str, Any], k: int) -> None:
    experiment = status["experiment"]
    if experiment is None:
        click.echo(f"no experiment running on {status['namespace']}; serving {status['serving']}")
        for done in status["finished"]:
            decision = done.get("decision") or {}
            click.echo(
                f"  {done['id']}: {done['state']} by {decision.get('by')}: {decision.get('reason')}"
            )
        return
    waiting = experiment["challenger_version"] is None
    click.echo(
        f"experiment {experiment['id']}: champion {experiment['champion']}, challenger "
        f"{experiment['challenger']} (version {experiment['challenger_version'] or 'none yet'}), "
        f"share {experiment['share']:g}, {'shadow' if experiment['shadow'] else 'split'}"
        + ("; waiting for the challenger's first snapshot" if waiting else "")
    )
    fig = experiment["figures"]
    for arm in ("champion", "challenger"):
        row = fig[arm]
        click.echo(
            f"  {arm:<10}  judged {row['judged']:>8}  hit@{k} {row[f'hit@{k}']:.4f}  "
            f"mrr@{k} {row[f'mrr@{k}']:.4f}"
        )
    for name in (f"hit@{k}", f"mrr@{k}"):
        diff = fig[f"difference_{name}"]
        low, high = diff["ci95"]
        alow, ahigh = diff["always_valid"]
        click.echo(
            f"  difference {name}  {diff['difference']:+.4f}  95 % CI [{low:+.4f}, {high:+.4f}]"
            f"  always-valid [{alow:+.4f}, {ahigh:+.4f}]"
        )
    gate = experiment["gate"]
    click.echo(f"  gate ({'auto' if gate['auto'] else 'manual'}): {gate['reason']}")


@command.command("status")
@json_option("experiment_json")
def status(as_json: bool) -> None:
    """The running experiment: per-arm judged views, hit@k, MRR@k and the difference."""
    settings, experiments = _settings_and_store()
    body = _status(settings, experiments)
    if as_json:
        click.echo(json.dumps(body, indent=2, sort_keys=True))
    else:
        _print_status(body, settings.k)


@command.command("stop")
@setting_option(
    "--promote",
    setting="experiment_promote",
    is_flag=True,
    default=False,
    help="Make the challenger the served model.",
)
def stop(promote: bool) -> None:
    """End the running experiment; with --promote the challenger serves everyone."""
    settings, experiments = _settings_and_store()
    running = experiments.running()
    if running is None:
        raise ConfigurationError(f"no experiment is running on {settings.model_name}")
    if promote and _store_of(settings, running.challenger).current_version() is None:
        raise ConfigurationError(
            f"the challenger {running.challenger} has no snapshot yet; nothing to promote"
        )
    shown = figures(running, experiments.counts(running.id), settings.k)
    action = PROMOTE if promote else STOP
    done = experiments.finish(running, action, "operator", shown, by="operator")
    if done is None:
        raise ConfigurationError(f"experiment {running.id} ended meanwhile (the gate decided)")
    if promote:
        click.echo(
            f"experiment {running.id} promoted: "
            f"{settings.model_name} now serves {running.challenger}"
        )
    else:
        click.echo(
            f"experiment {running.id} stopped: {settings.model_name} serves {running.champion}"
        )
