from __future__ import annotations

import collections
import hashlib
import hmac
import io
import logging
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from online_model.base import Recommender
from online_model.errors import (
    ConfigurationError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotVerificationError,
)
from online_model.models.covisit import Covisitation
from online_model.models.popularity import DecayedPopularity
from online_model.persist import pickles
from online_model.persist.pickles import is_allowed_global
from online_model.persist.snapshot import (
    INSECURE_DEV_KEY,
    Snapshot,
    SnapshotMeta,
    dump_snapshot,
    load_snapshot,
    read_meta,
    signing_key,
)

KEY = b"unit-test-key"


def builtin_models() -> dict[str, Recommender]:
    try:
        from online_model.registry import MODELS, make_model
    except ImportError:  # registry not there yet: the models this module knows
        return {"popularity": DecayedPopularity(), "covisit": Covisitation()}
    return {name: make_model(name, {"seed": 7}) for name in MODELS}


def trained(model: Recommender, n: int = 40) -> Recommender:
    for i in range(n):
        model.learn_one(f"u{i % 5}", f"p{(i * 7) % 11}", x={"ts": 1_700_000_000_000 + 1000 * i})
    return model


def make_snapshot(model: Recommender | None = None) -> Snapshot:
    model = model or trained(Covisitation())
    meta = SnapshotMeta(
        model_name="m1",
        created_at=1234.5,
        events_seen=model.n_events_learned,
        origin="trainer",
        offsets={"page-views": {0: 17, 2: 5}},
        metrics={"hit@10": 0.25},
        extra={"note": "x"},
    )
    return Snapshot(meta=meta, model=model, trainer_state={"bad_events": 3})


def resign(data: bytes, key: bytes = KEY) -> bytes:
    body = data[:-32]
    return body + hmac.new(key, body, hashlib.sha256).digest()


def test_round_trip_keeps_model_meta_and_state() -> None:
    snap = make_snapshot()
    data = dump_snapshot(snap, KEY)
    assert data.startswith(b"SRSNAP\x02")
    loaded = load_snapshot(data, KEY)
    assert loaded.meta.offsets == {"page-views": {0: 17, 2: 5}}
    assert loaded.meta.model_class == "online_model.covisit.Covisitation"
    assert loaded.meta.events_seen == 40 and loaded.meta.metrics == {"hit@10": 0.25}
    assert loaded.meta.extra == {"note": "x"}
    assert loaded.trainer_state == {"bad_events": 3}
    assert loaded.model.n_events_learned == 40
    assert loaded.model.recommend("u", 5, history=["p3"]) == snap.model.recommend(
        "u", 5, history=["p3"]
    )
    assert read_meta(data, KEY) == loaded.meta
    assert SnapshotMeta.from_json(loaded.meta.to_json()) == loaded.meta


def test_wrong_key_is_a_verification_error() -> None:
    data = dump_snapshot(make_snapshot(), KEY)
    with pytest.raises(SnapshotVerificationError):
        load_snapshot(data, b"another-key")
    with pytest.raises(SnapshotVerificationError):
        read_meta(data, b"another-key")


def test_a_flipped_byte_anywhere_is_refused() -> None:
    data = dump_snapshot(make_snapshot(trained(DecayedPopularity(), 5)), KEY)
    # Every position: prefix, header, body and MAC.
    for pos in range(len(data)):
        flipped = bytearray(data)
        flipped[pos] ^= 0x01
        with pytest.raises(SnapshotError):
            load_snapshot(bytes(flipped), KEY)


@pytest.mark.parametrize("cut", [0, 5, 11, 40, -33, -1])
def test_truncated_is_a_format_error(cut: int) -> None:
    data = dump_snapshot(make_snapshot(), KEY)
    with pytest.raises(SnapshotFormatError, match=r"truncated|bad magic"):
        load_snapshot(data[:cut], KEY)


def test_bad_magic_is_a_format_error() -> None:
    data = resign(b"XXSNAP" + dump_snapshot(make_snapshot(), KEY)[6:-32])
    with pytest.raises(SnapshotFormatError, match="magic"):
        load_snapshot(data, KEY)


@pytest.mark.parametrize("version", [0, 3, 255])
def test_unknown_format_version_is_a_format_error_even_when_validly_signed(version: int) -> None:
    data = dump_snapshot(make_snapshot(), KEY)
    future = resign(data[:6] + bytes([version]) + data[7:-32])
    with pytest.raises(SnapshotFormatError, match=f"format version {version} "):
        load_snapshot(future, KEY, allow_pickle=True)


def _forge(body_obj_bytes: bytes, key: bytes = KEY) -> bytes:
    """A correctly signed format-1 snapshot whose model pickle is ``body_obj_bytes``."""
    import json

    body = pickle.dumps({"model": body_obj_bytes, "trainer_state": {}}, protocol=5)
    header = json.dumps(
        {"meta": SnapshotMeta("m").to_dict(), "body_encoding": "raw", "body_length": len(body)}
    ).encode()
    unsigned = struct.pack(">6sBI", b"SRSNAP", 1, len(header)) + header + body
    return unsigned + hmac.new(key, unsigned, hashlib.sha256).digest()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_validly_signed_pickle_calling_os_system_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Evil(marker), protocol=5)
    assert b"system" in evil  # the payload really names os.system (posix.system)
    # Refused without the operator's flag, and by the allow-list with it.
    with pytest.raises(SnapshotFormatError, match="STREAMREC_ALLOW_PICKLE"):
        load_snapshot(_forge(evil), KEY, allow_pickle=False)
    with pytest.raises(SnapshotFormatError, match="not allowed"):
        load_snapshot(_forge(evil), KEY, allow_pickle=True)
    assert not marker.exists()
    # The same bytes through plain pickle would have run the command: the test can fail.
    pickle.loads(evil)
    assert marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("functools", "partial"),
        ("copyreg", "_reconstructor"),
        ("numpy", "load"),
        ("numpy.testing", "assert_equal"),
        ("random", "Random"),
        ("online_model.persist.snapshot", "os.system"),  # attribute walk through an allowed module
        ("online_model.persist.snapshot", "__builtins__"),
        ("river.utils", "__builtins__"),
        ("river.stream", "iter_csv"),  # a river function, not a class
    ],
)
def test_dangerous_globals_are_refused(module: str, name: str) -> None:
    evil = b"\x80\x05\x8c" + bytes([len(module)]) + module.encode()
    evil += b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93."  # STACK_GLOBAL, STOP
    with pytest.raises(SnapshotFormatError, match="not allowed"):
        load_snapshot(_forge(evil), KEY, allow_pickle=True)


class _Recorder(pickle.Unpickler):
    def __init__(self, data: bytes, seen: set[tuple[str, str]]) -> None:
        super().__init__(io.BytesIO(data))
        self.seen = seen

    def find_class(self, module: str, name: str) -> Any:
        self.seen.add((module, name))
        return super().find_class(module, name)


def _globals_of(obj: object) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    _Recorder(pickle.dumps(obj, protocol=5), seen).load()
    return seen


@pytest.mark.parametrize("name", sorted(builtin_models()))
def test_every_builtin_model_round_trips_through_the_allow_list(name: str) -> None:
    # Format 1 (pickle) snapshots of earlier releases still load behind the flag.
    model = trained(builtin_models()[name])
    data = dump_snapshot(make_snapshot(model), KEY, format_version=1)
    loaded = load_snapshot(data, KEY, allow_pickle=True).model
    assert type(loaded) is type(model)
    assert loaded.n_events_learned == model.n_events_learned
    assert loaded.recommend("u1", 5, history=["p7"]) == model.recommend("u1", 5, history=["p7"])
    loaded.learn_one("u9", "p1")  # still learns after the round trip
    for module, gname in _globals_of(model):
        assert is_allowed_global(module, gname), (module, gname)


# Plain values a model may reasonably hold besides the built-ins' own state.
_PROBES: list[object] = [
    collections.deque([1], maxlen=3),
    collections.Counter("aab"),
    collections.defaultdict(list),
    collections.defaultdict(dict),
    collections.defaultdict(set),
    collections.defaultdict(int),
    collections.defaultdict(float),
    1 + 2j,
    slice(1, 2),
    np.zeros((3, 4)),
    np.zeros((3, 4))[:, ::2],  # non-contiguous: the _reconstruct path
    np.float64(1.5),
    np.random.default_rng(1),
    np.random.RandomState(1),
    np.random.Generator(np.random.PCG64DXSM(1)),
    np.random.Generator(np.random.Philox(1)),
    np.random.Generator(np.random.SFC64(1)),
]


def test_allow_list_is_sufficient_and_minimal() -> None:
    used: set[tuple[str, str]] = set()
    for model in builtin_models().values():
        used |= _globals_of(trained(model))
    for probe in _PROBES:
        used |= _globals_of(probe)
    assert all(is_allowed_global(m, n) for m, n in used)
    # Every exact entry is needed by something above; only the wildcard prefixes
    # (online_model.*, river classes) are not enumerated.
    unused = {entry for entry in pickles._ALLOWED_GLOBALS if entry not in used}
    assert unused == set()


def test_same_model_twice_gives_the_same_content_hash() -> None:
    a = read_meta(dump_snapshot(make_snapshot(trained(Covisitation())), KEY), KEY)
    b = read_meta(dump_snapshot(make_snapshot(trained(Covisitation())), KEY), KEY)
    c = read_meta(dump_snapshot(make_snapshot(trained(Covisitation(), 41)), KEY), KEY)
    assert len(a.content_hash) == 64
    assert a.content_hash == b.content_hash != c.content_hash


def test_large_format_1_models_are_compressed_and_still_round_trip() -> None:
    model = trained(Covisitation(), 3000)
    data = dump_snapshot(make_snapshot(model), KEY, format_version=1)
    assert len(data) < len(pickle.dumps(model, protocol=5))
    assert load_snapshot(data, KEY, allow_pickle=True).model.n_events_learned == 3000


def test_signing_key_rules(caplog: pytest.LogCaptureFixture) -> None:
    assert signing_key("s3cret", insecure_dev=False) == b"s3cret"
    assert signing_key("s3cret", insecure_dev=True) == b"s3cret"
    with pytest.raises(ConfigurationError, match="STREAMREC_SNAPSHOT_KEY is not set"):
        signing_key("", insecure_dev=False)
    with caplog.at_level(logging.WARNING, logger="online_model.persist.snapshot"):
        assert signing_key("", insecure_dev=True) == INSECURE_DEV_KEY
    assert any(r.levelno == logging.WARNING for r in caplog.records)
