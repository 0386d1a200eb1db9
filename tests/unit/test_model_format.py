"""Snapshot format 2: built-in models without pickle, tampering, the pickle flag."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from river import reco

from online_model.base import Recommender
from online_model.data.generate import generate
from online_model.errors import (
    ConfigurationError,
    ModelError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotVerificationError,
)
from online_model.models.adapter import RiverRanker
from online_model.models.covisit import Covisitation
from online_model.models.popularity import DecayedPopularity
from online_model.persist import model_file, pickles, snapshot
from online_model.persist.snapshot import (
    Snapshot,
    SnapshotMeta,
    check_storable,
    dump_snapshot,
    load_snapshot,
    pickle_allowed,
    read_meta,
)
from online_model.registry import MODELS, make_model
from online_model.state import (
    ModelState,
    StateNotExportable,
    class_name,
    decode_strings,
    encode_strings,
    exports_state,
)
from streams.settings import Settings

KEY = b"format-test-key"
ROOT = Path(__file__).resolve().parents[2]
EVENTS = generate(n_users=80, n_pages=120, n_events=2_000, seed=11).rows()


def trained(name: str, events: list[Any] = EVENTS) -> Recommender:
    model = make_model(name, {"seed": "5"})
    for user, page, ts, _ in events:
        model.learn_one(user, page, x={"ts": ts})
    return model


def top10s(model: Recommender) -> list[list[tuple[object, float]]]:
    """Top-10 lists on the paths a scorer takes: known histories, unknown pages, excluded
    pages, no history at all, and an exclusion that swallows the popular pages."""
    out = []
    for user, page, _, _ in EVENTS[-60:]:
        hist = [p for u, p, _, _ in EVENTS[-400:] if u == user][-5:]
        out.append(model.recommend(user, k=10, history=hist, exclude=set(hist)))
        out.append(model.recommend(user, k=10, history=[*hist, "never-seen"], exclude={page}))
    out.append(model.recommend("nobody", k=10))
    popular = [p for p, _ in model.recommend("nobody", k=40)]
    out.append(model.recommend("nobody", k=10, history=popular[:3], exclude=set(popular)))
    return out


def snap_of(model: Recommender, name: str = "m") -> Snapshot:
    meta = SnapshotMeta(name, events_seen=model.n_events_learned, offsets={"t": {0: 9}})
    return Snapshot(meta, model, {"bad_events": 2})


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way of unpickling fail loudly."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle was called")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(pickles._RestrictedUnpickler, "load", refuse)
    monkeypatch.setattr(snapshot, "restricted_loads", refuse)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_builtin_models_load_without_pickle_and_serve_the_same_top10(
    name: str, no_pickle: None
) -> None:
    model = trained(name)
    before = top10s(model)
    data = dump_snapshot(snap_of(model), KEY, allow_pickle=False)
    loaded = load_snapshot(data, KEY, allow_pickle=True)  # allowed, yet never needed
    assert type(loaded.model) is type(model)
    assert loaded.model.n_events_learned == model.n_events_learned
    assert top10s(loaded.model) == before
    assert loaded.trainer_state == {"bad_events": 2}
    assert loaded.meta.offsets == {"t": {0: 9}}
    assert loaded.meta.model_class == class_name(type(model))
    # It resumes learning exactly where the original is: same answers, same bytes.
    for user, page, ts, _ in EVENTS[:300]:
        model.learn_one(user, page, x={"ts": ts})
        loaded.model.learn_one(user, page, x={"ts": ts})
    assert top10s(loaded.model) == top10s(model)
    again = read_meta(dump_snapshot(snap_of(loaded.model), KEY), KEY)
    assert again.content_hash == read_meta(dump_snapshot(snap_of(model), KEY), KEY).content_hash


def test_a_loaded_covisitation_answers_the_river_api_and_pickles_like_the_original() -> None:
    model = trained("covisit")
    loaded = load_snapshot(dump_snapshot(snap_of(model), KEY), KEY).model
    user = EVENTS[-1][0]
    pages = [p for _, p, _, _ in EVENTS[-20:]]
    assert loaded.user_history(user) == model.user_history(user)
    assert loaded.rank(user, pages) == model.rank(user, pages)
    assert loaded.predict_one(user, pages[0]) == model.predict_one(user, pages[0])
    # A format-1 copy of a loaded model is the original's.
    copy = pickles.restricted_loads(pickle.dumps(loaded, protocol=5))
    assert top10s(copy) == top10s(model)


def test_snapshot_starts_with_magic_version_and_lengths() -> None:
    data = dump_snapshot(snap_of(trained("popularity")), KEY)
    assert data[:7] == b"SRSNAP\x02"
    manifest_len = int.from_bytes(data[7:11], "big")
    tensors_len = int.from_bytes(data[11:19], "big")
    assert len(data) == 19 + manifest_len + tensors_len + 32
    manifest = json.loads(data[19 : 19 + manifest_len])
    assert manifest["model"]["encoding"] == "arrays"
    assert manifest["model"]["class"] == "online_model.popularity.DecayedPopularity"
    assert "pages.utf8" in data[19 + manifest_len + 8 : 19 + manifest_len + 1000].decode("latin1")


# -- tampering: refused before anything is parsed -------------------------------------------
def resign(unsigned: bytes) -> bytes:
    return unsigned + hmac.new(KEY, unsigned, hashlib.sha256).digest()


def tampered() -> dict[str, bytes]:
    a = dump_snapshot(snap_of(trained("covisit"), "a"), KEY)
    b = dump_snapshot(snap_of(trained("popularity"), "b"), KEY)
    a_manifest_end = 19 + int.from_bytes(a[7:11], "big")
    b_manifest_end = 19 + int.from_bytes(b[7:11], "big")
    # b's tensors behind a's manifest, lengths fixed up so only the MAC can tell.
    b_tensors = b[b_manifest_end:-32]
    spliced = a[:11] + len(b_tensors).to_bytes(8, "big") + a[19:a_manifest_end] + b_tensors
    return {
        "wrong_mac": a[:-32] + bytes(32),
        "wrong_key": dump_snapshot(snap_of(trained("popularity")), b"another-key"),
        "truncated_mac": a[:-1],
        "truncated_tensors": a[: a_manifest_end + 100] + a[-32:],
        "padded": a[:-32] + b"\x00" + a[-32:],
        "flipped_tensor_byte": a[:-100] + bytes([a[-100] ^ 1]) + a[-99:],
        "flipped_manifest_byte": a[:30] + bytes([a[30] ^ 1]) + a[31:],
        "unknown_version": resign(a[:6] + b"\x03" + a[7:-32]),
        "tensors_of_another_model": spliced + a[-32:],
        "another_models_mac": spliced + b[-32:],
    }


@pytest.mark.parametrize("kind", sorted(tampered()))
def test_tampered_snapshots_are_refused_before_parsing(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tampered()[kind]

    def parsed(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed before the MAC was checked")

    monkeypatch.setattr(snapshot.json, "loads", parsed)
    monkeypatch.setattr(model_file, "load_tensors", parsed)
    for read in (load_snapshot, read_meta):
        with pytest.raises(SnapshotError) as info:
            read(data, KEY)
        assert isinstance(info.value, (SnapshotVerificationError, SnapshotFormatError))


def test_validly_signed_tensors_that_do_not_fit_the_model_are_refused() -> None:
    # A writer bug, not an attack (the MAC is valid): refused cleanly, not a traceback.
    data = dump_snapshot(snap_of(trained("covisit")), KEY)
    end = 19 + int.from_bytes(data[7:11], "big")
    manifest = json.loads(data[19:end])
    manifest["model"]["state"]["popularity"].pop("total")
    body = json.dumps(manifest).encode()
    forged = resign(data[:7] + len(body).to_bytes(4, "big") + data[11:19] + body + data[end:-32])
    with pytest.raises(SnapshotFormatError, match="does not fit"):
        load_snapshot(forged, KEY)
    manifest["model"]["class"] = "os.system"
    body = json.dumps(manifest).encode()
    forged = resign(data[:7] + len(body).to_bytes(4, "big") + data[11:19] + body + data[end:-32])
    with pytest.raises(SnapshotFormatError, match="not a known model class"):
        load_snapshot(forged, KEY)


# -- the pickle flag -------------------------------------------------------------------------
def test_format_1_loads_only_with_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    model = trained("covisit")
    old = dump_snapshot(snap_of(model), KEY, format_version=1)
    assert old[:7] == b"SRSNAP\x01"
    # Even with the variable set: only the caller's word (the settings' reading) counts.
    monkeypatch.setenv("STREAMREC_ALLOW_PICKLE", "1")
    with pytest.raises(SnapshotFormatError, match=r"format 1.*STREAMREC_ALLOW_PICKLE=1"):
        load_snapshot(old, KEY)
    assert read_meta(old, KEY).events_seen == model.n_events_learned  # no pickle in meta
    allowed = Settings.from_env({"STREAMREC_ALLOW_PICKLE": "1"}).allow_pickle
    assert top10s(load_snapshot(old, KEY, allowed).model) == top10s(model)
    refused = Settings.from_env({"STREAMREC_ALLOW_PICKLE": "0"}).allow_pickle
    with pytest.raises(SnapshotFormatError, match="STREAMREC_ALLOW_PICKLE"):
        load_snapshot(old, KEY, refused)


def test_a_bad_flag_value_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="STREAMREC_ALLOW_PICKLE"):
        Settings.from_env({"STREAMREC_ALLOW_PICKLE": "maybe"})
    assert pickle_allowed(True) is True and pickle_allowed(None) is False


def river_ranker() -> RiverRanker:
    model = RiverRanker(reco.Baseline())
    for user, page, ts, _ in EVENTS[:300]:
        model.learn_one(user, page, x={"ts": ts})
    return without_rng(model)


def without_rng(ranker: RiverRanker) -> RiverRanker:
    """River rankers keep an unused random.Random, a global the allow-listing unpickler
    refuses (as it always did); drop it so the pickle path itself can be exercised."""
    ranker.model._rng = ranker._model._rng = None
    return ranker


def test_user_river_models_need_the_flag_to_be_stored_and_loaded() -> None:
    model = river_ranker()
    assert not exports_state(model)
    with pytest.raises(ConfigurationError, match="STREAMREC_ALLOW_PICKLE=1"):
        dump_snapshot(snap_of(model), KEY, allow_pickle=False)
    with pytest.raises(ConfigurationError, match="STREAMREC_ALLOW_PICKLE=1"):
        check_storable(RiverRanker(reco.Baseline()), allow_pickle=False)
    check_storable(make_model("covisit"), allow_pickle=False)  # built-ins never need it
    data = dump_snapshot(snap_of(model), KEY, allow_pickle=True)
    assert data[:7] == b"SRSNAP\x02"
    with pytest.raises(SnapshotFormatError, match=r"pickled .*RiverRanker.*STREAMREC_ALLOW_PICKLE"):
        load_snapshot(data, KEY, allow_pickle=False)
    loaded = load_snapshot(data, KEY, allow_pickle=True).model
    assert loaded.recommend("u1", 10) == model.recommend("u1", 10)


def test_a_blend_with_a_member_without_arrays_falls_back_to_pickle_only_when_allowed() -> None:
    from online_model.models.blend import Blend

    blend = Blend([(Covisitation(), 1.0), (river_ranker(), 0.5)])
    without_rng(blend._members[1][0])  # type: ignore[arg-type]
    without_rng(blend.models[1][0])  # type: ignore[arg-type, index]
    with pytest.raises(ConfigurationError, match="RiverRanker has no pickle-free state"):
        dump_snapshot(snap_of(blend), KEY, allow_pickle=False)
    data = dump_snapshot(snap_of(blend), KEY, allow_pickle=True)
    assert load_snapshot(data, KEY, allow_pickle=True).model.n_events_learned == 0


def test_a_blend_of_member_objects_round_trips_without_pickle(no_pickle: None) -> None:
    from online_model.models.blend import Blend

    blend = Blend([(Covisitation(window=3), 1.0), (DecayedPopularity(half_life=50), 0.3)])
    for user, page, ts, _ in EVENTS:
        blend.learn_one(user, page, x={"ts": ts})
    loaded = load_snapshot(dump_snapshot(snap_of(blend), KEY), KEY).model
    assert top10s(loaded) == top10s(blend)
    assert loaded.clone()._get_params().keys() == blend._get_params().keys()
    assert [type(m) for m, _ in loaded.models] == [Covisitation, DecayedPopularity]
    assert loaded.models[0][0].window == 3


def test_ids_that_are_not_strings_are_refused_with_a_clear_error() -> None:
    model = DecayedPopularity()
    model.learn_one("u", 42)
    with pytest.raises(ConfigurationError, match="page ids as strings; 42 is a int"):
        dump_snapshot(snap_of(model), KEY, allow_pickle=False)


def test_trainer_state_must_be_json() -> None:
    snap = Snapshot(SnapshotMeta("m"), DecayedPopularity(), {"x": object()})
    with pytest.raises(SnapshotFormatError, match="trainer state must be JSON"):
        dump_snapshot(snap, KEY)


# -- content hash ----------------------------------------------------------------------------
_HASH_SCRIPT = """
import sys
from online_model.data.generate import generate
from online_model.registry import make_model
from online_model.persist.snapshot import Snapshot, SnapshotMeta, dump_snapshot, read_meta
for name in sys.argv[1:]:
    model = make_model(name, {"seed": "5"})
    for user, page, ts, _ in generate(n_users=50, n_pages=60, n_events=800, seed=3).rows():
        model.learn_one(user, page, x={"ts": ts})
    data = dump_snapshot(Snapshot(SnapshotMeta("m"), model), b"k")
    print(name, read_meta(data, b"k").content_hash)
"""


def test_content_hash_is_the_same_in_every_process() -> None:
    # String hashing (hence set and some dict orders) differs per process seed.
    outputs = []
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            [sys.executable, "-c", _HASH_SCRIPT, *sorted(MODELS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        outputs.append(run.stdout)
    assert len(outputs[0].splitlines()) == len(MODELS)
    assert outputs[0] == outputs[1] == outputs[2]


def test_content_hash_changes_with_the_model() -> None:
    a = read_meta(dump_snapshot(snap_of(trained("covisit")), KEY), KEY).content_hash
    b = read_meta(dump_snapshot(snap_of(trained("covisit", EVENTS[:-1])), KEY), KEY)
    assert len(a) == 64 and a != b.content_hash


# -- the building blocks ---------------------------------------------------------------------
def test_string_tables_round_trip_any_text() -> None:
    table = ["", "a", "é", "页面", "x\ny", "\x00", "a" * 1000]
    assert decode_strings(*encode_strings(table)) == table
    data, offsets = encode_strings(table)
    with pytest.raises(ModelError, match="span"):
        decode_strings(data[:-1], offsets)
    bad = offsets.copy()
    bad[2], bad[3] = bad[3], bad[2]
    with pytest.raises(ModelError, match="backwards"):
        decode_strings(data, bad)


def test_model_state_checks_array_types() -> None:
    state = ModelState(arrays={"x": np.zeros(3, dtype=np.int32)})
    with pytest.raises(ModelError, match="expected float64"):
        state.array("x", np.float64)
    with pytest.raises(ModelError, match="no array 'y'"):
        state.array("y", np.float64)


def test_a_model_that_opts_in_is_stored_without_pickle(no_pickle: None) -> None:
    """A plug-in model opts in with two methods and the decorator."""
    from online_model.state import stores_state

    @stores_state
    class Counter(DecayedPopularity):
        def state_arrays(self) -> ModelState:
            state = ModelState(values={"extra": 1})
            state.nest("inner", super().state_arrays())
            return state

        @classmethod
        def from_state(cls, params: dict[str, Any], state: ModelState) -> Counter:
            model = cls(**params)
            model.restore(state.sub("inner"))
            return model

    model = Counter(half_life=10)
    for user, page, ts, _ in EVENTS[:100]:
        model.learn_one(user, page, x={"ts": ts})
    loaded = load_snapshot(dump_snapshot(snap_of(model), KEY, allow_pickle=False), KEY).model
    assert type(loaded) is Counter and loaded.half_life == 10
    assert loaded.recommend("u", 10) == model.recommend("u", 10)


def test_state_not_exportable_is_a_model_error() -> None:
    assert issubclass(StateNotExportable, ModelError)


def test_export_to_safetensors_carries_the_manifest_and_refuses_pickles() -> None:
    from safetensors.numpy import load as load_tensors

    from online_model.persist.snapshot import export_safetensors

    model = trained("mf")
    data = dump_snapshot(snap_of(model), KEY)
    out = export_safetensors(data, KEY, allow_pickle=False)
    header_len = int.from_bytes(out[:8], "little")
    metadata = json.loads(out[8 : 8 + header_len])["__metadata__"]
    manifest = json.loads(metadata["streamrec.manifest"])
    assert manifest["meta"] == read_meta(data, KEY).to_dict()
    tensors = load_tensors(out)
    assert tensors["item_factors"].shape == (model.n_items, model.n_factors)
    with pytest.raises(SnapshotVerificationError):
        export_safetensors(data[:-1] + bytes([data[-1] ^ 1]), KEY)
    pickled = dump_snapshot(snap_of(river_ranker()), KEY, allow_pickle=True)
    with pytest.raises(SnapshotFormatError, match=r"pickled .*RiverRanker"):
        export_safetensors(pickled, KEY, allow_pickle=True)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_untrained_model_round_trips_and_then_learns(name: str) -> None:
    # What a trainer publishes before the first event, and resumes from.
    fresh = make_model(name, {"seed": "5"})
    loaded = load_snapshot(dump_snapshot(snap_of(fresh), KEY), KEY).model
    assert loaded.n_items == 0 and loaded.recommend("u", 10) == []
    for m in (fresh, loaded):
        for user, page, ts, _ in EVENTS[:200]:
            m.learn_one(user, page, x={"ts": ts})
    assert top10s(loaded) == top10s(fresh)


def test_files_name_the_builtins_as_the_format_defines_them() -> None:
    """The class names files record are part of the format (docs/model-format.md): they
    stay what they were when the format was defined, wherever the code lives now."""
    names = {name: class_name(type(trained(name))) for name in sorted(MODELS)}
    assert names == {
        "blend": "online_model.blend.Blend",
        "covisit": "online_model.covisit.Covisitation",
        "ensemble": "online_model.ensemble.Ensemble",
        "hybrid": "online_model.hybrid.Hybrid",
        "mf": "online_model.factorization.ImplicitMF",
        "popularity": "online_model.popularity.DecayedPopularity",
    }
    spec = (Path(__file__).parents[2] / "docs" / "model-format.md").read_text()
    assert all(f"`{name}`" in spec for name in names.values())


def test_a_pickle_naming_the_old_module_paths_still_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Format-1 snapshots pickled the built-ins under the module paths of the time."""
    import online_model.models.popularity as module

    model = trained("popularity")
    with monkeypatch.context() as old_layout:  # pickle it as the old layout named it
        old_layout.setattr(DecayedPopularity, "__module__", "online_model.popularity")
        old_layout.setitem(sys.modules, "online_model.popularity", module)
        data = pickle.dumps(model, protocol=5)
    assert b"online_model.popularity" in data and "online_model.popularity" not in sys.modules
    loaded = pickles.restricted_loads(data)
    assert type(loaded) is DecayedPopularity and top10s(loaded) == top10s(model)
