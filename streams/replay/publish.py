"""Publishing a freshly trained snapshot: shared by ``replay`` and ``retrain``."""

from __future__ import annotations

from typing import Any

import click

from online_model.persist.snapshot import Snapshot, dump_snapshot, read_meta
from streams.replay.rebuild import Verdict
from streams.settings import Settings
from streams.wiring import snapshot_store

#: Exit status when ``--gate`` refuses the candidate (2 is any other error).
EXIT_GATE_REFUSED = 3


def publish(
    settings: Settings, snap: Snapshot, key: bytes, mode: str, verdict: Verdict | None
) -> tuple[dict[str, Any], bool]:
    """Store ``snap`` as ``mode`` says unless ``verdict`` refused it.

    ``mode``: ``none`` (only its content hash), ``candidate`` (stored, current unchanged)
    or ``live`` (stored and promoted, pinned). Returns the fields of the JSON summary that
    say where it went (``gate``, ``publish``, ``version``, ``current``, ``content_hash``)
    and whether the gate refused it; progress lines go to stderr.
    """
    out: dict[str, Any] = {
        "gate": verdict.to_dict() if verdict else None,
        "publish": mode,
        "version": None,
        "current": False,
    }
    if verdict is not None:
        click.echo(verdict.message(), err=True)
    refused = verdict is not None and not verdict.passed
    if refused or mode == "none":
        out["content_hash"] = read_meta(dump_snapshot(snap, key), key).content_hash
        if refused and verdict is not None:
            click.echo(f"refused: not published ({verdict.message()})", err=True)
        return out, refused
    store = snapshot_store(settings)
    version = store.publish(snap, make_current=False)
    if mode == "live":
        store.promote(version)
    out["version"] = version
    out["current"] = store.current_version() == version
    out["content_hash"] = store.read_meta(version).content_hash
    click.echo(
        f"published model={settings.model_name} version={version} "
        f"mode={mode} current={out['current']}",
        err=True,
    )
    return out, False
