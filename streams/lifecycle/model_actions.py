"""What an operator does to a model: list its versions, promote, roll back, follow.

``streamrec models list|promote|rollback|follow`` and the scorer's ``/models`` endpoints
both call these, so both list, check, move what is served and log the same way. Each acts
on what scorers of the model name serve (:mod:`streams.state.serving`: the namespace the
``serving`` pointer names after a promotion, and its ``current``) and returns what is
served afterwards; :meth:`~streams.state.serving.Serving.switch` does the move in one Lua
script and publishes the hint running scorers swap on. A move that did not take effect
raises, so no caller reports success for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from online_model.errors import ConfigurationError, SnapshotError
from online_model.persist.snapshot import SnapshotMeta
from streams.experiment import results
from streams.state.connection import redis_errors
from streams.state.serving import Placement, ServedModel, Serving, change_entry
from streams.state.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)

#: The snapshot store of a namespace (built from the caller's settings).
StoreFor = Callable[[str], SnapshotStore]


def _when(ts: float) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when_ms(ms: int | None) -> str:
    return "…" if ms is None else _when(ms / 1000)


def _spans(spans: dict[str, list[int]]) -> str:
    return ",".join(
        f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(spans.items(), key=lambda i: int(i[0]))
    )


def range_summary(meta: SnapshotMeta) -> str:
    """What a snapshot learned, in one short cell: time range and offsets of a replay;
    next offsets of a trainer snapshot."""
    replay = meta.extra.get("replay")
    if isinstance(replay, dict):
        window = replay.get("time_range") or {}
        when = f"{_when_ms(window.get('from_ms'))}..{_when_ms(window.get('to_ms'))}"
        return f"{when} {_spans(replay.get('offset_ranges') or {})}".strip()
    parts = [f"{p}:<{o}" for parts in meta.offsets.values() for p, o in sorted(parts.items())]
    return ",".join(parts) or "-"


def _row(
    meta: SnapshotMeta,
    current: int | None,
    pinned: bool,
    k: int,
    delta_of: int | None,
    experiments: list[dict[str, Any]],
) -> dict[str, Any]:
    is_current = meta.version == current
    return {
        "delta_of": delta_of,
        "version": meta.version,
        "created_at": meta.created_at,
        "created": _when(meta.created_at),
        "origin": meta.origin,
        "events": meta.events_seen,
        "range": range_summary(meta),
        f"hit@{k}": meta.metrics.get(f"hit@{k}"),
        f"mrr@{k}": meta.metrics.get(f"mrr@{k}"),
        "current": is_current,
        "pinned": is_current and pinned,
        "model_class": meta.model_class,
        "content_hash": meta.content_hash,
        "verified": True,
        "experiments": experiments,
    }


def version_rows(
    store: SnapshotStore, k: int, served: ServedModel | None = None
) -> list[dict[str, Any]]:
    """Kept versions of ``store``'s namespace, newest first, as ``streamrec models list
    --json`` prints them; versions that do not verify come with ``verified: false`` and
    their ``error``. ``current``/``pinned`` describe the namespace; ``is_served`` marks
    the one version scorers serve (none when ``served`` names another namespace)."""
    current, pinned = store.current_version(), store.is_pinned()
    good, bad = store.inspect_versions()
    deltas = store.delta_hints()
    outcomes = experiment_outcomes(store)
    served_version = current
    if served is not None:
        served_version = served.version if served.namespace == store.model_name else None
    rows = [
        _row(meta, current, pinned, k, deltas.get(meta.version), outcomes.get(meta.version, []))
        for meta in good
    ]
    hints = store.origin_hints()
    rows += [
        {
            "version": v,
            "origin": hints.get(v, "?"),
            "current": v == current,
            "pinned": v == current and pinned,
            "verified": False,
            "error": error,
        }
        for v, error in bad
    ]
    for row in rows:
        row["is_served"] = row["version"] == served_version
        row["namespace"] = store.model_name
    rows.sort(key=lambda r: -int(r["version"]))
    return rows


def served_rows(
    serving: Serving, store_for: StoreFor, k: int, namespace: str | None = None
) -> tuple[ServedModel, list[dict[str, Any]]]:
    """What is served, and the :func:`version_rows` of ``namespace`` (default: the one
    served): ``models list``, ``GET /models`` and the console all show these."""
    served = serving.read()
    return served, version_rows(store_for(namespace or served.namespace), k, served)


@redis_errors
def experiment_outcomes(store: SnapshotStore) -> dict[int, list[dict[str, Any]]]:
    """The finished experiments each kept version served in, with the decision and the
    per-arm served quality it was taken on (:mod:`streams.experiment.results`)."""
    return results.by_version(store.redis, store.keys)


def _outcome(action: str, by: str, after: ServedModel, before: ServedModel) -> dict[str, Any]:
    log.info(
        "model_action action=%s by=%s model=%s namespace=%s current=%s pinned=%s "
        "previous_namespace=%s previous=%s",
        action,
        by,
        after.model_name,
        after.namespace,
        after.version,
        after.pinned,
        before.namespace,
        before.version,
    )
    out: dict[str, Any] = {
        "model": after.model_name,
        "namespace": after.namespace,
        "current": after.version,
        "pinned": after.pinned,
    }
    if action != "follow":
        out["previous"] = before.version
        out["previous_namespace"] = before.namespace
    return out


class VersionNotKept(SnapshotError):
    """The version asked for is not (or no longer) in the store."""


def _no_experiment_running(serving: Serving, action: str) -> None:
    """Moving serving to another namespace under a running experiment would leave its
    arms pointing at what is no longer served: refused."""
    if serving.redis.exists(serving.keys.experiment):
        raise ConfigurationError(
            f"an experiment is running on {serving.model_name}: stop it first "
            f"(streamrec experiment stop [--promote]), then {action}"
        )


def _switch(
    serving: Serving,
    action: str,
    by: str,
    before: ServedModel,
    to: Placement,
    **extra: Any,
) -> dict[str, Any]:
    serving.switch(
        before, to, change_entry(action, by, to, before.placement, **extra), pin_left=True
    )
    after = serving.read()
    if after.namespace != to.namespace or (to.version is not None and after.version != to.version):
        raise SnapshotError(
            f"{action} did not take effect: {after.model_name} serves {after.namespace} "
            f"version {after.version}, not {to.namespace} version {to.version}"
        )
    return _outcome(action, by, after, before)


@redis_errors
def promote(
    serving: Serving, store_for: StoreFor, version: int, by: str, namespace: str | None = None
) -> dict[str, Any]:
    """Serve ``version`` of ``namespace`` (default: the served one) and pin it; refused
    (SnapshotError) unless it verifies and loads. Serving another namespace's version
    moves the model name's ``serving`` pointer there too, and pins the namespace it
    leaves, so that ``rollback`` restores exactly what was served."""
    before = serving.read()
    target = namespace or before.namespace
    store = store_for(target)
    if version not in store.versions():
        raise VersionNotKept(f"no snapshot {target} version {version}")
    store.load(version)  # verifies and loads: a promotion never serves what cannot load
    if target != before.namespace:
        _no_experiment_running(serving, f"promote {target} version {version}")
    return _switch(serving, "promote", by, before, Placement(target, version, True))


@redis_errors
def rollback(serving: Serving, store_for: StoreFor, by: str) -> dict[str, Any]:
    """Undo the newest promotion into the served namespace from another one (serve again
    what was served before it, pinned); otherwise serve the newest verifiable version of
    the served namespace older than the served one, and pin it."""
    before = serving.read()
    change = before.last_change
    if (
        change is not None
        and change.get("action") in ("promote", "experiment")
        and change.get("namespace") == before.namespace
        and change["before"]["namespace"] != before.namespace
    ):
        left = Placement.from_dict(change["before"])
        _no_experiment_running(serving, f"roll back to {left.namespace}")
        version = _restorable(store_for(left.namespace), left.version)
        to = Placement(left.namespace, version, version is not None)
        return _switch(serving, "rollback", by, before, to, undoes=change.get("at"))
    if before.version is None:
        raise SnapshotError(f"{before.namespace} has no current version to roll back from")
    store = store_for(before.namespace)
    for version in store.versions():
        if version >= before.version:
            continue
        try:
            store.load(version)
        except SnapshotError:
            continue
        return _switch(serving, "rollback", by, before, Placement(before.namespace, version, True))
    raise SnapshotError(f"{before.namespace} has no verifiable version older than {before.version}")


def _restorable(store: SnapshotStore, version: int | None) -> int | None:
    """``version`` if it still verifies and loads, else the newest one older that does;
    None when nothing was served there (cold start)."""
    if version is None:
        return None
    for candidate in [version, *(v for v in store.versions() if v < version)]:
        try:
            store.load(candidate)
        except SnapshotError:
            continue
        return candidate
    raise SnapshotError(
        f"nothing to roll back to: {store.model_name} keeps no verifiable version at or "
        f"below {version}"
    )


@redis_errors
def follow(serving: Serving, store_for: StoreFor, by: str) -> dict[str, Any]:
    """Unpin the served namespace; serve its newest trainer version (``current`` None
    when there is none yet) and each new one its trainer publishes."""
    before = serving.read()
    store = store_for(before.namespace)
    snap = store.latest(origin="trainer")
    to = Placement(before.namespace, None if snap is None else snap.meta.version, False)
    serving.switch(before, to, change_entry("follow", by, to, before.placement))
    return _outcome("follow", by, serving.read(), before)


def cli_line(outcome: dict[str, Any]) -> str:
    """The one line ``streamrec models`` prints: ``current=7 pinned=true model=m``, with
    the namespaces when the served one is not the model name's own or changed.

    >>> cli_line({"model": "m", "namespace": "m", "current": 3, "pinned": True,
    ...           "previous": 5, "previous_namespace": "m"})
    'current=3 pinned=true previous=5 model=m'
    >>> cli_line({"model": "m", "namespace": "m", "current": 3, "pinned": True,
    ...           "previous": 9, "previous_namespace": "m.xab"})
    'current=3 pinned=true previous=m.xab:9 model=m namespace=m'
    """
    shown: dict[str, Any] = {
        "current": "none-yet" if outcome["current"] is None else outcome["current"],
        "pinned": str(outcome["pinned"]).lower(),
    }
    namespace = outcome.get("namespace", outcome["model"])
    previous_namespace = outcome.get("previous_namespace", namespace)
    if "previous" in outcome:
        previous = outcome["previous"]
        shown["previous"] = (
            previous if previous_namespace == namespace else f"{previous_namespace}:{previous}"
        )
    shown["model"] = outcome["model"]
    if namespace != outcome["model"] or previous_namespace != namespace:
        shown["namespace"] = namespace
    return " ".join(f"{key}={value}" for key, value in shown.items())
