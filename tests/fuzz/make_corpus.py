"""Write the seed corpus of every fuzz target: ``python -m tests.fuzz.make_corpus``.

Small valid inputs and a few near-valid ones per target, written to
``tests/fuzz/corpus/<target>/`` under the SHA-1 of their bytes (libFuzzer's naming), so
running it again changes nothing unless the formats change. The seeds are committed; the
fuzzer never writes into this folder (its findings go to a folder of the run).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from tests.fuzz.harness import CORPUS

#: Valid JSON nested this deep: a mutation that copies part of it nests past the
#: interpreter's recursion limit (json raises RecursionError, not ValueError, there).
DEEP = 400


def _deep(inner: bytes = b"1") -> bytes:
    return b"[" * DEEP + inner + b"]" * DEEP


def write(target: str, inputs: Iterable[bytes]) -> int:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for data in inputs:
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        n += 1
    return n


def avro_codec() -> list[bytes]:
    from streams.io.codec import HEADER, MAGIC_BYTE, PAGE_VIEW, AvroCodec, _parse
    from streams.io.schema_registry import bundled_schemas

    codec = AvroCodec.bundled(PAGE_VIEW)
    base = {"event_id": "e1", "user_id": "u1", "page_id": "p1", "ts": 1733493600000}
    records = [
        base,
        {**base, "session_id": "s1", "referrer": "https://example.com/"},
        {**base, "context": {"app": "web", "streamrec.category": "news|sport"}},
        {**base, "context": {"streamrec.exclude": "p2|p3"}},
        {**base, "user_id": "ü" * 40, "page_id": "p" * 70, "ts": -1},
    ]
    out = [codec.encode(r) for r in records]
    # An older schema version (id of page_view.v1): read through schema resolution.
    import io

    import fastavro

    _, every = bundled_schemas()
    table = codec._registry
    for version in every:
        name = f"{version.schema.get('namespace')}.{version.schema.get('name')}"
        if name != PAGE_VIEW or version.schema == bundled_schemas()[0][PAGE_VIEW].schema:
            continue
        buf = io.BytesIO()
        buf.write(HEADER.pack(MAGIC_BYTE, table.id_for(version)))
        fastavro.schemaless_writer(buf, _parse(version.schema), {**base, "session_id": None})
        out.append(buf.getvalue())
    good = out[0]
    out += [good[:-1], good + b"\x00", b"\x01" + good[1:], good[:5], b""]
    return out


def _views_csv() -> bytes:
    return (
        b"user_id,page_id,ts_ms,session_id\n"
        b"u1,home,1733493600000,s1\nu2,news,1733493600500,\n"
        b'u1,"a,b",1.7334936e12,s1\n\n'
    )


def _views_jsonl() -> bytes:
    rows = [
        {"user_id": "u1", "page_id": "home", "ts_ms": 1733493600000, "session_id": "s1"},
        {"user_id": "u2", "page_id": "news", "ts_ms": "1733493600500"},
        {"user_id": 7, "page_id": "p", "ts_ms": 1.5e12},
    ]
    return b"\n".join(json.dumps(r).encode() for r in rows) + b"\n"


def events_file() -> list[bytes]:
    import gzip

    csv, jsonl = _views_csv(), _views_jsonl()
    return [
        b"\x00" + csv,
        b"\x80" + csv + b"u3,p,notatime,\n",  # skip_bad
        b"\x00\xef\xbb\xbf" + csv,  # a byte-order mark
        b"\x00user_id,page_id\nu1,p1\n",  # header without ts_ms
        b"\x01" + jsonl,
        b"\x81" + jsonl + b"[1]\n{bad\n",
        b"\x02" + csv,
        b"\x03" + jsonl,
        b"\x04" + gzip.compress(csv, mtime=0),
        b"\x05" + gzip.compress(jsonl, mtime=0)[:-6],  # truncated
        b"\x81" + jsonl + _deep() + b"\n",
    ]


def pages_file() -> list[bytes]:
    import gzip

    csv = (
        b"page_id,available,categories,published_at,expires_at,title,url,author\n"
        b"p1,true,news|sport,1700000000000,2030-01-01T00:00:00Z,Home,https://x/,ann\n"
        b"p2,no,,,,,,\n"
    )
    rows = [
        {"page_id": "p1", "categories": ["news"], "attributes": {"a": "b"}},
        {"page_id": "p2", "available": False, "published_at": "2024-05-01T12:00:00+02:00"},
        {"page_id": "p3", "expires_at": 1700000000000, "title": "t", "url": "u"},
    ]
    jsonl = b"\n".join(json.dumps(r).encode() for r in rows) + b"\n"
    return [
        b"\x00" + csv,
        b"\x00page_id\np1\n\n",
        b"\x00page_id,available\np1,maybe\n",
        b"\x01" + jsonl,
        b"\x01" + b'{"page_id": "p1", "categories": [1]}\n',
        b"\x02" + csv,
        b"\x03" + jsonl,
        b"\x04" + gzip.compress(csv, mtime=0),
        b"\x01" + b'{"page_id": "p1", "attributes": ' + _deep(b"{}") + b"}\n",
    ]


def snapshot() -> list[bytes]:
    from online_model.models import (
        Blend,
        Covisitation,
        DecayedPopularity,
        Ensemble,
        Hybrid,
        ImplicitMF,
    )
    from online_model.models.itemitem import fit_item_item
    from online_model.persist.batch_layer_file import dump_batch_layer
    from online_model.persist.snapshot import (
        LEGACY_FORMAT_VERSION,
        Snapshot,
        SnapshotMeta,
        dump_snapshot,
        load_snapshot,
    )
    from online_model.persist.snapshot_delta import ChainPosition, dump_delta
    from tests.fuzz.fuzz_snapshot import KEY, VIEWS, join

    def parts(data: bytes) -> tuple[bytes, bytes]:
        n, m = int.from_bytes(data[7:11], "big"), int.from_bytes(data[11:19], "big")
        return data[19 : 19 + n], data[19 + n : 19 + n + m]

    views = VIEWS
    out = []
    models: list[Any] = [
        Covisitation(),
        DecayedPopularity(),
        Hybrid(),
        ImplicitMF(n_factors=2),
        Blend([(Covisitation(), 1.0), (DecayedPopularity(), 0.5)]),
        Ensemble(),
    ]
    for model in models:
        for user, page in views:
            model.learn_one(user, page)
        meta = SnapshotMeta("fuzz", version=1, offsets={"pv": {0: 5}}, metrics={"hit@10": 0.5})
        data = dump_snapshot(Snapshot(meta, model, {"resume": 1}), KEY)
        manifest, tensors = parts(data)
        out += [join(0, manifest, tensors), join(1, manifest, b""), bytes([4]) + data[:-32]]
        if hasattr(model, "state_delta"):
            full = load_snapshot(data, KEY)
            model.mark_published()
            model.learn_one("u9", "new")
            link = ChainPosition.after(full.meta, None).next_link()
            delta = dump_delta(
                SnapshotMeta("fuzz", version=2), model, model.state_delta(), link, {}, KEY
            )
            out.append(join(2, *parts(delta)))
    layer = fit_item_item([(u, p, i) for i, (u, p) in enumerate(views)], l2=0.5)
    data = dump_batch_layer(SnapshotMeta("fuzz", offsets={"pv": {0: 5}}), layer, KEY)
    out.append(join(3, *parts(data)))
    legacy = dump_snapshot(
        Snapshot(SnapshotMeta("fuzz", version=1), DecayedPopularity()),
        KEY,
        format_version=LEGACY_FORMAT_VERSION,
    )
    out += [bytes([4]) + legacy[:-32], bytes([5]) + legacy[:-32]]
    manifest, tensors = parts(dump_snapshot(Snapshot(SnapshotMeta("fuzz"), models[0]), KEY))
    header = json.loads(manifest)
    header["trainer_state"] = {"deep": json.loads(_deep())}
    out.append(join(0, json.dumps(header).encode(), tensors))
    return out


def rest_params() -> list[bytes]:
    return [
        b"\x00k=5&category=news&category=sport&exclude=p1",
        b"\x00k=0",
        b"\x00k=%EF%BC%95&category=%20",
        b"\x00exclude=" + b"&exclude=".join(b"p%d" % i for i in range(5)),
        b'\x01{"version": 3}',
        b'\x01{"version": 2, "namespace": "challenger"}',
        b'\x01{"version": true}',
        b"\x01[1]",
        b'\x01{"version": ' + _deep() + b"}",
        b"\x02since=1700000000.5",
        b"\x02since=nan",
        b"\x03u42",
        b"\x03%C3%BC%20x",
    ]


TARGETS = {
    "avro_codec": avro_codec,
    "events_file": events_file,
    "pages_file": pages_file,
    "snapshot": snapshot,
    "rest_params": rest_params,
}


if __name__ == "__main__":
    for target, seeds in TARGETS.items():
        print(target, write(target, seeds()))
