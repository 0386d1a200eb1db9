"""``streamrec models``: list, show, export, promote, roll back and follow model snapshots.

Every move of ``current`` goes through :class:`~streams.state.snapshot_store.SnapshotStore`, which
does it in one Lua script and publishes a hint on the model's channel; running scorers
swap within a poll interval, without a restart. Only versions that verify can be
promoted (or rolled back to).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from online_model.errors import InputError, ModelError
from online_model.export.pmml import covisit_pmml
from streams.cli.options import Count, json_option, k_option, setting_option
from streams.experiment import results
from streams.lifecycle import model_actions
from streams.lifecycle.model_actions import cli_line
from streams.settings import Settings
from streams.state.serving import ServedModel, Serving, served_line
from streams.state.snapshot_store import SnapshotStore
from streams.state.trainer_status import STATUS_TTL_S, TrainerStatus, state_of
from streams.wiring import serving, store_for


def _lifecycle(settings: Settings) -> tuple[Serving, model_actions.StoreFor]:
    """What is served, and the store of any namespace, on one Redis connection."""
    client = settings.redis_client(socket_timeout=5.0)
    return serving(settings, client), store_for(settings, client)


def _namespace_store(
    settings: Settings, namespace: str | None
) -> tuple[SnapshotStore, ServedModel]:
    """The store of ``namespace`` (default: the one served) and what is served."""
    lifecycle, stores = _lifecycle(settings)
    served = lifecycle.read()
    return stores(namespace or served.namespace), served


def namespace_option(what: str) -> Any:
    return setting_option(
        "--namespace",
        default=None,
        setting="models_namespace",
        help=f"The namespace whose versions to {what}. [default: the one served: "
        "STREAMREC_MODEL_NAME's own, or the one promoted into it]",
    )


def _table(rows: list[dict[str, Any]], k: int) -> str:
    """The rows as a table; ``*`` marks the version served, ``c`` the current one of a
    namespace that is not served."""
    head = ["", "VERSION", "CREATED", "ORIGIN", "EVENTS", "RANGE", f"HIT@{k}", "PINNED", "NOTE"]
    body = []
    for r in rows:
        if not r["verified"]:
            body.append(
                [
                    _mark(r) + "!",
                    str(r["version"]),
                    "-",
                    r["origin"],
                    "-",
                    "-",
                    "-",
                    "pinned" if r["pinned"] else "",
                    f"UNVERIFIED: {r['error']}",
                ]
            )
            continue
        hit = r[f"hit@{k}"]
        body.append(
            [
                _mark(r),
                str(r["version"]),
                r["created"],
                r["origin"],
                str(r["events"]),
                r["range"],
                "-" if hit is None else f"{hit:.4f}",
                "pinned" if r["pinned"] else "",
                "; ".join(
                    ([] if r.get("delta_of") is None else [f"delta of {r['delta_of']}"])
                    + [results.summary(entry) for entry in r.get("experiments", [])]
                ),
            ]
        )
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [head, *body]
    )


def _mark(row: dict[str, Any]) -> str:
    if row.get("is_served", row["current"]):
        return "*"
    return "c" if row["current"] else ""


@click.group("models")
def command() -> None:
    """Snapshots of STREAMREC_MODEL_NAME: list, status, show, export, promote, rollback,
    follow."""


@command.command("list")
@json_option("models_json", "One JSON array on stdout instead of a table.")
@k_option("Which hit@k to show.")
@namespace_option("list")
def list_(as_json: bool, k: int | None, namespace: str | None) -> None:
    """Kept versions of the namespace served, newest first, under a line saying what is
    served and why; `*` marks the version scorers serve (`c` the current one of a
    namespace that is not served). Versions that do not verify are listed as UNVERIFIED
    (and cannot be promoted)."""
    settings = Settings.from_env(k=k)
    served, rows = model_actions.served_rows(*_lifecycle(settings), settings.k, namespace)
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return
    click.echo(served_line(served))
    listed = namespace or served.namespace
    if listed != served.namespace:
        click.echo(f"listing {listed}, which is not served")
    if rows:
        click.echo(_table(rows, settings.k))
    else:
        click.echo(f"no snapshots in namespace {listed!r}", err=True)


@command.command("status")
@json_option("models_json", "The trainer's status record as JSON instead of a line.")
def status(as_json: bool) -> None:
    """Is a trainer learning STREAMREC_MODEL_NAME? Exit 0 when one is alive and not
    stalled; 1 when none has said so for 15 s, or it is stalled (behind the log and
    receiving nothing)."""
    settings = Settings.from_env()
    record = TrainerStatus(settings.redis_client(), settings.model_name).read()
    if as_json:
        click.echo(json.dumps(record, sort_keys=True))
    elif record is None:
        click.echo(
            f"trainer of {settings.model_name}: none alive (no status in the last "
            f"{STATUS_TTL_S:.0f} s); the model learns nothing until one runs"
        )
    else:
        click.echo(status_line(record))
    if record is None or state_of(record) == "stalled":
        raise SystemExit(1)


def status_line(record: dict[str, Any]) -> str:
    """One line for an operator from a trainer status record."""
    age = max(0.0, time.time() - record["updated_at"])
    line = (
        f"trainer of {record['model_name']}: {state_of(record)}; pid {record['pid']} on "
        f"{record['host']}, {record['events_learned']} events learned since start, "
        f"last version {record['last_version']}, updated {age:.0f} s ago"
    )
    if "fetch_wait_ms" in record:
        line += f"; fetch wait {record['fetch_wait_ms']} ms, {record['stalls']} stalls"
    if record.get("stalled"):
        line += (
            f"; STALLED: {record['behind']} records behind, nothing received for "
            f"{record['idle_s']:.0f} s (replacing its consumer)"
        )
    return line


@command.command("show")
@click.argument("version", type=Count(1))
@namespace_option("show")
def show(version: int, namespace: str | None) -> None:
    """The full metadata of VERSION as JSON (it must verify; nothing is unpickled)."""
    store, served = _namespace_store(Settings.from_env(), namespace)
    meta = store.read_meta(version)
    out = meta.to_dict()
    out["namespace"] = store.model_name
    out["current"] = store.current_version() == version
    out["pinned"] = out["current"] and store.is_pinned()
    out["served"] = served.namespace == store.model_name and served.version == version
    # Kept beside the signed metadata: the experiments this version served in.
    out["experiments"] = model_actions.experiment_outcomes(store).get(version, [])
    click.echo(json.dumps(out, sort_keys=True, indent=2))


@command.command("export")
@click.argument("version", type=Count(1))
@setting_option(
    "--format",
    "fmt",
    type=click.Choice(["safetensors", "snapshot", "pmml"]),
    default="safetensors",
    setting="export_format",
    show_default=True,
    help="safetensors: a plain .safetensors file, the manifest in its metadata (unsigned). "
    "snapshot: the signed snapshot bytes (a delta version materialised as a full "
    "snapshot; docs/model-format.md). pmml: a co-visitation model's transitions as a "
    "PMML 4.4 AssociationModel (page -> next page, confidence = P(next | page)).",
)
@setting_option(
    "--top-n",
    type=click.IntRange(min=1),
    default=10,
    setting="export_top_n",
    show_default=True,
    help="pmml: rules per page (its strongest transitions).",
)
@setting_option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    setting="export_output",
    help="File to write; '-' for stdout.",
)
@namespace_option("export from")
def export(version: int, fmt: str, output: Path, top_n: int, namespace: str | None) -> None:
    """Write the model of VERSION to a file other tools can read.

    VERSION is verified first (HMAC); nothing is unpickled unless STREAMREC_ALLOW_PICKLE=1
    and VERSION is a format-1 snapshot, which is then converted.
    """
    store, _ = _namespace_store(Settings.from_env(), namespace)
    if fmt == "safetensors":
        out = store.export_safetensors(version)
    elif fmt == "pmml":
        snap = store.load(version)
        try:
            out = covisit_pmml(snap.model, top_n, f"streamrec {store.model_name} version {version}")
        except ModelError as exc:
            raise InputError(f"cannot export version {version} as PMML: {exc}") from exc
    else:
        out = store.full_bytes(version)
    if str(output) == "-":
        click.get_binary_stream("stdout").write(out)
        return
    # Written beside the target and renamed: a reader never sees half a file.
    partial = output.with_name(f".{output.name}.partial")
    try:
        partial.write_bytes(out)
        os.replace(partial, output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(
        f"exported model={store.model_name} version={version} format={fmt} "
        f"bytes={len(out)} output={output}",
        err=True,
    )


@command.command("promote")
@click.argument("version", type=Count(1))
@namespace_option("promote from")
def promote(version: int, namespace: str | None) -> None:
    """Serve VERSION and pin it (the trainer's publishes no longer move current).

    Refused unless VERSION verifies and loads. With --namespace another namespace's
    VERSION (a challenger, or the namespace a promotion left) is served from then on;
    `rollback` serves again what was served before.
    """
    lifecycle, stores = _lifecycle(Settings.from_env())
    outcome = model_actions.promote(lifecycle, stores, version, by="cli", namespace=namespace)
    click.echo(cli_line(outcome))


@command.command("rollback")
def rollback() -> None:
    """Undo the newest promotion from another namespace (serve again what was served
    before it); otherwise serve the newest verifiable version older than the served one.
    Either way the version is pinned."""
    lifecycle, stores = _lifecycle(Settings.from_env())
    click.echo(cli_line(model_actions.rollback(lifecycle, stores, by="cli")))


@command.command("follow")
def follow() -> None:
    """Unpin the namespace served: serve its newest trainer version, and each new one
    its trainer publishes."""
    lifecycle, stores = _lifecycle(Settings.from_env())
    click.echo(cli_line(model_actions.follow(lifecycle, stores, by="cli")))
