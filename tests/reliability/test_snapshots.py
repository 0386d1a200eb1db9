"""Bad snapshots moved into ``current`` behind a running scorer's back are refused; the
old model keeps serving, and a good snapshot afterwards is still picked up.

The scorer runs as deployed by default: without ``STREAMREC_ALLOW_PICKLE``, so every
pickle (format 1, or a format 2 file holding one) is refused before it is unpickled.
Deltas are refused the same way, and also when they do not apply to the model held."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from online_model.models.covisit import Covisitation
from online_model.models.popularity import DecayedPopularity
from online_model.persist.snapshot import _PREFIX, Snapshot, SnapshotMeta, dump_snapshot
from online_model.persist.snapshot_delta import DeltaLink, dump_delta
from streams.io.topics import ensure_topics
from streams.services.processes import ChildProcess, wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from tests.support.fixtures import TEST_SNAPSHOT_KEY, on_every_engine
from tests.support.outages import stopping, summary
from tests.support.scorer import http_json, http_text, wait_ready

KEY = TEST_SNAPSHOT_KEY.encode()


class RunsACommand:
    """Unpickling this runs a shell command: what an attacker would put in a snapshot."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def popularity(pages: list[str]) -> DecayedPopularity:
    model = DecayedPopularity()
    for page in pages:
        model.learn_one("someone", page)
    return model


def signed(
    store: SnapshotStore,
    version: int,
    model: Any,
    key: bytes = KEY,
    trainer_state: dict[str, Any] | None = None,
    format_version: int = 2,
) -> bytes:
    meta = SnapshotMeta(
        model_name=store.model_name,
        version=version,
        created_at=time.time(),
        events_seen=1,
        origin="trainer",
    )
    # allow_pickle: an attacker writes whatever bytes it likes; the scorer must refuse them.
    snap = Snapshot(meta, model, trainer_state or {})
    return dump_snapshot(snap, key, format_version=format_version, allow_pickle=True)


def resigned_with_format(data: bytes, format_version: int) -> bytes:
    """The same snapshot claiming another format version, with a VALID MAC."""
    magic, _, header_len = _PREFIX.unpack_from(data)
    unsigned = _PREFIX.pack(magic, format_version, header_len) + data[_PREFIX.size : -32]
    return unsigned + hmac.new(KEY, unsigned, hashlib.sha256).digest()


def plant(store: SnapshotStore, version: int, data: bytes) -> None:
    """Write ``data`` as ``version`` and point ``current`` at it, as an attacker with
    write access to Redis (or a broken publisher) would; then send the usual hint."""
    r = store.redis
    r.set(store.keys.snapshot(version), data)
    r.zadd(store.keys.versions, {str(version): time.time()})
    r.set(store.keys.current, version)
    r.publish(store.keys.published_channel, version)


def plant_each_and_see_it_refused(
    store: SnapshotStore,
    base: str,
    kinds: list[str],
    make: Callable[[int], dict[str, bytes]],
    kept: int,
    expected: list[str],
) -> dict[str, int]:
    """Plant each kind of bad file as a new current version; the scorer must refuse it,
    count it and keep serving version ``kept`` (``expected``: its top pages for a
    newcomer). Returns kind -> the version it was planted as."""
    refused = {}
    for i, kind in enumerate(kinds):
        version = int(store.redis.incr(store.keys.version_seq))
        plant(store, version, make(version)[kind])
        wait_for(
            lambda n=i + 1: http_json(f"{base}/healthz")[1]["snapshots_rejected"] >= n,
            20,
            f"{kind} refused",
        )
        status, body = http_json(f"{base}/recommendations/newcomer?k={len(expected)}")
        assert status == 200 and body["model_version"] == kept, (kind, body)
        assert [item["page_id"] for item in body["items"]] == expected, kind
        refused[kind] = version
    return refused


@on_every_engine
def test_bad_snapshots_are_refused_and_the_old_model_keeps_serving(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    store = SnapshotStore(settings.redis_client(), settings.model_name, KEY)
    good = store.publish(
        Snapshot(SnapshotMeta(settings.model_name), popularity(["alpha"] * 3 + ["beta"]))
    )
    marker = tmp_path / "pwned"
    payload = RunsACommand(f"touch {marker}")
    # The payload is live: plain pickle would run it (so the test below can fail).
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(RunsACommand(f"touch {probe}")))
    assert probe.exists()

    def bad_snapshots(next_version: int) -> dict[str, bytes]:
        v = next_version
        valid = signed(store, v, popularity(["evil"]))
        return {
            "wrong_mac": signed(store, v, popularity(["evil"]), key=b"not-the-key"),
            "valid_mac_os_system_model": signed(store, v, payload),
            "valid_mac_format_1_os_system_model": signed(store, v, payload, format_version=1),
            "valid_mac_format_1_os_system_state": signed(
                store, v, popularity(["evil"]), trainer_state={"x": payload}, format_version=1
            ),
            "valid_mac_format_1_without_the_flag": signed(
                store, v, popularity(["evil"]), format_version=1
            ),
            "truncated": valid[: len(valid) // 2],
            "unknown_format_version": resigned_with_format(valid, 99),
            "other_version_copied": signed(store, v - 1 if v > 1 else v + 7, popularity(["evil"])),
        }

    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    base = f"http://127.0.0.1:{settings.web_port}"
    with stopping(scorer):
        wait_ready(settings, scorer)
        wait_for(
            lambda: http_json(f"{base}/healthz")[1]["model_version"] == good,
            30,
            "the good snapshot served",
        )
        kinds = list(bad_snapshots(1))
        refused = plant_each_and_see_it_refused(
            store, base, kinds, bad_snapshots, good, ["alpha", "beta"]
        )
        time.sleep(1.5)  # a few more polls of the same bad current: counted once each
        metrics = http_text(f"{base}/metrics")
        # The scorer still follows the trainer: a good snapshot afterwards is served.
        newer = store.publish(
            Snapshot(SnapshotMeta(settings.model_name), popularity(["gamma"] * 2))
        )
        wait_for(
            lambda: http_json(f"{base}/healthz")[1]["model_version"] == newer,
            20,
            "a good snapshot after the bad ones",
        )
        pid_alive = scorer.alive()
        assert scorer.stop() == 0, scorer.output()[-3000:]
    summary(
        "bad_snapshots",
        planted=len(kinds),
        refused=len(refused),
        marker_file_exists=marker.exists(),
        kept_version=good,
        then_served=newer,
    )
    assert not marker.exists(), "a snapshot ran a command in the scorer"
    assert f"streamrec_snapshots_rejected {float(len(kinds))}" in metrics, metrics
    assert pid_alive
    log = scorer.output()
    for kind, version in refused.items():
        assert f"snapshot_rejected version={version}" in log, (kind, log[-3000:])


def test_bad_deltas_are_refused_and_the_old_model_keeps_serving(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings)
    store = SnapshotStore(settings.redis_client(), settings.model_name, KEY)
    model = Covisitation()
    for i in range(300):
        model.learn_one(f"u{i % 17}", f"p{(i * 7) % 23}")
    base = store.publish_full(Snapshot(SnapshotMeta(settings.model_name), model))
    model.mark_published()
    for i in range(40):
        model.learn_one(f"u{i % 5}", f"q{i % 4}")
    good = store.publish_delta(
        SnapshotMeta(settings.model_name),
        model,
        model.state_delta(),
        base,
        {},  # type: ignore[arg-type]
    )
    model.mark_published()
    expected = [p for p, _ in model.recommend("newcomer", 3, [], exclude=())]
    for i in range(40):
        model.learn_one(f"u{i % 5}", f"r{i % 3}")
    changes = model.state_delta()
    assert changes is not None
    other = SnapshotStore(settings.redis_client(), f"{settings.model_name}-other", KEY)
    other_base = other.publish_full(Snapshot(SnapshotMeta(other.model_name), model))

    def delta(version: int, link: DeltaLink, key: bytes = KEY, name: str = "") -> bytes:
        meta = SnapshotMeta(name or settings.model_name, version=version, origin="trainer")
        return dump_delta(meta, model, changes, link, {}, key)  # type: ignore[arg-type]

    def bad_deltas(v: int) -> dict[str, bytes]:
        after_good = good.next_link()
        valid = delta(v, after_good)
        return {
            "delta_wrong_mac": delta(v, after_good, key=b"not-the-key" * 3),
            "delta_truncated": valid[: len(valid) - 40],
            # Valid MACs, wrong places in the chain:
            "delta_out_of_order": delta(
                v, dataclasses.replace(after_good, sequence=after_good.sequence + 1)
            ),
            "delta_skips_a_version": delta(
                v, dataclasses.replace(after_good, previous_version=good.version + 1)
            ),
            "delta_for_another_base": delta(v, other_base.next_link()),
            "delta_copied_from_another_model": delta(
                v, other_base.next_link(), name=other.model_name
            ),
        }

    scorer = ChildProcess.streamrec(["scorer"], settings_env, tmp_path / "scorer.log")
    base_url = f"http://127.0.0.1:{settings.web_port}"
    with stopping(scorer):
        wait_ready(settings, scorer)
        wait_for(
            lambda: http_json(f"{base_url}/healthz")[1]["model_version"] == good.version,
            30,
            "the good delta served",
        )
        kinds = list(bad_deltas(1))
        refused = plant_each_and_see_it_refused(
            store, base_url, kinds, bad_deltas, good.version, expected
        )
        metrics = http_text(f"{base_url}/metrics")
        # The next good delta still applies to the model held.
        newer = store.publish_delta(SnapshotMeta(settings.model_name), model, changes, good, {})
        wait_for(
            lambda: http_json(f"{base_url}/healthz")[1]["model_version"] == newer.version,
            20,
            "a good delta after the bad ones",
        )
        assert scorer.stop() == 0, scorer.output()[-3000:]
    summary(
        "bad_deltas",
        planted=len(kinds),
        refused=len(refused),
        kept_version=good.version,
        then_served=newer.version,
    )
    assert f"streamrec_snapshots_rejected {float(len(kinds))}" in metrics, metrics
    log = scorer.output()
    for kind, version in refused.items():
        assert f"snapshot_rejected version={version}" in log, (kind, log[-3000:])
