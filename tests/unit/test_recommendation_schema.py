"""Recommendation version 2 adds ``arm``: old readers still read it, old records still decode."""

from __future__ import annotations

import io
import json
import struct
from importlib import resources

import fastavro

from streams.io.codec import HEADER, RECOMMENDATION, AvroCodec, _parse
from streams.io.schema_registry import LocalSchemaTable, bundled_schemas

V1 = json.loads(resources.files("schemas").joinpath("history/recommendation.v1.avsc").read_text())

RECORD = {
    "event_id": "e1",
    "user_id": "u1",
    "items": [{"page_id": "p1", "score": 0.5}],
    "model_name": "default.x1",
    "model_version": 3,
    "page_view_ts": 10,
    "produced_at": 11,
}


def test_an_app_with_the_version_1_schema_reads_a_version_2_record() -> None:
    codec = AvroCodec.bundled(RECOMMENDATION)
    data = codec.encode({**RECORD, "arm": "challenger"})
    writer = _parse(
        json.loads(resources.files("schemas").joinpath("recommendation.avsc").read_text())
    )
    old = fastavro.schemaless_reader(io.BytesIO(data[HEADER.size :]), writer, _parse(V1))
    assert old == RECORD  # the new field is skipped, every old one is there


def test_a_version_1_record_reads_as_version_2_with_an_empty_arm() -> None:
    codec = AvroCodec.bundled(RECOMMENDATION)
    _, every = bundled_schemas()
    v1_id = next(
        i
        for i, src in LocalSchemaTable(every).ids().items()
        if src.endswith("recommendation.v1.avsc")
    )
    out = io.BytesIO()
    out.write(b"\x00" + struct.pack(">I", v1_id))
    fastavro.schemaless_writer(out, _parse(V1), RECORD)
    assert codec.decode(out.getvalue()) == {**RECORD, "arm": ""}


def test_a_record_without_the_arm_takes_the_fast_encoder_and_the_default() -> None:
    # Producers written before version 2 leave the field out; the compiled encoder must
    # write the default itself rather than fall back to the slower generic writer.
    codec = AvroCodec.bundled(RECOMMENDATION)
    assert codec._fast_encode is not None
    data = codec._fast_encode(RECORD)
    assert codec.decode(data) == {**RECORD, "arm": ""}
    assert data == codec._fast_encode({**RECORD, "arm": ""})
