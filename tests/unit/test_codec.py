from __future__ import annotations

import io
import json
import struct
from importlib import resources

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import (
    BadMagicByte,
    CorruptBody,
    MessageTooLarge,
    MessageTooShort,
    SchemaViolation,
    UnknownSchemaId,
)
from streams.io.codec import PAGE_VIEW, RECOMMENDATION, AvroCodec, _parse
from streams.io.schema_registry import LocalSchemaTable, bundled_schemas

ids = st.text(min_size=1, max_size=40)
ts = st.integers(min_value=0, max_value=2**62)

page_views = st.fixed_dictionaries(
    {
        "event_id": ids,
        "user_id": ids,
        "page_id": ids,
        "ts": ts,
        "session_id": st.none() | st.text(max_size=20),
        "referrer": st.none() | st.text(max_size=20),
        "context": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
    }
)
recommendations = st.fixed_dictionaries(
    {
        "event_id": ids,
        "user_id": ids,
        "items": st.lists(
            st.fixed_dictionaries(
                {"page_id": ids, "score": st.floats(allow_nan=False, allow_infinity=False)}
            ),
            max_size=10,
        ),
        "model_name": st.text(max_size=20),
        "model_version": st.integers(min_value=0, max_value=2**62),
        "page_view_ts": ts,
        "produced_at": ts,
        "arm": st.sampled_from(["", "champion", "challenger"]),
    }
)


@pytest.fixture(scope="module")
def pv() -> AvroCodec:
    return AvroCodec.bundled(PAGE_VIEW, max_bytes=4096)


@pytest.fixture(scope="module")
def rec() -> AvroCodec:
    return AvroCodec.bundled(RECOMMENDATION)


@given(page_views)
@settings(max_examples=200, deadline=None)
def test_page_view_round_trip(record: dict) -> None:
    codec = AvroCodec.bundled(PAGE_VIEW, max_bytes=1 << 20)
    assert codec.decode(codec.encode(record)) == record


@given(recommendations)
@settings(max_examples=200, deadline=None)
def test_recommendation_round_trip(record: dict) -> None:
    codec = AvroCodec.bundled(RECOMMENDATION)
    assert codec.decode(codec.encode(record)) == record


def good(pv: AvroCodec) -> bytes:
    return pv.encode({"event_id": "e", "user_id": "u", "page_id": "p", "ts": 1})


def test_wire_format_header(pv: AvroCodec) -> None:
    data = good(pv)
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == pv.schema_id


@pytest.mark.parametrize("data", [None, b"", b"\x00", b"\x00\x01\x02\x03"])
def test_too_short(pv: AvroCodec, data: bytes | None) -> None:
    with pytest.raises(MessageTooShort):
        pv.decode(data)


def test_bad_magic_byte(pv: AvroCodec) -> None:
    with pytest.raises(BadMagicByte):
        pv.decode(b"\x01" + good(pv)[1:])


def test_unknown_schema_id(pv: AvroCodec) -> None:
    data = good(pv)
    with pytest.raises(UnknownSchemaId):
        pv.decode(data[:1] + struct.pack(">I", (pv.schema_id + 1) & 0x7FFFFFFF) + data[5:])


def test_schema_id_of_another_record_is_refused(pv: AvroCodec, rec: AvroCodec) -> None:
    data = rec.encode(
        {
            "event_id": "e",
            "user_id": "u",
            "items": [],
            "model_name": "m",
            "model_version": 1,
            "page_view_ts": 1,
            "produced_at": 2,
        }
    )
    with pytest.raises(UnknownSchemaId, match=r"not a version of streamrec\.PageView"):
        pv.decode(data)


def test_truncated_body(pv: AvroCodec) -> None:
    with pytest.raises(CorruptBody):
        pv.decode(good(pv)[:-3])


def test_trailing_garbage(pv: AvroCodec) -> None:
    with pytest.raises(CorruptBody, match="left after"):
        pv.decode(good(pv) + b"\x00\x00")


def test_invalid_utf8(pv: AvroCodec) -> None:
    data = bytearray(good(pv))
    # body starts with event_id: zigzag length 1 (0x02) then "e"
    assert data[5:7] == b"\x02e"
    data[6] = 0xFF
    with pytest.raises(CorruptBody, match="UTF-8"):
        pv.decode(bytes(data))


def test_too_large(pv: AvroCodec) -> None:
    big = pv.encode({"event_id": "e", "user_id": "u", "page_id": "p" * 5000, "ts": 1})
    with pytest.raises(MessageTooLarge):
        pv.decode(big)


def test_missing_required_field_on_encode(pv: AvroCodec) -> None:
    with pytest.raises(SchemaViolation):
        pv.encode({"event_id": "e", "user_id": "u", "ts": 1})


def test_wrong_type_on_encode(pv: AvroCodec) -> None:
    with pytest.raises(SchemaViolation):
        pv.encode({"event_id": "e", "user_id": "u", "page_id": "p", "ts": "yesterday"})


def test_empty_user_id_is_a_violation_on_decode(pv: AvroCodec) -> None:
    # Written by someone else's encoder, which did not check for empty ids.
    out = io.BytesIO()
    out.write(b"\x00" + struct.pack(">I", pv.schema_id))
    fastavro.schemaless_writer(
        out,
        pv._writer,
        {
            "event_id": "e",
            "user_id": "",
            "page_id": "p",
            "ts": 1,
            "session_id": None,
            "referrer": None,
            "context": {},
        },
    )
    with pytest.raises(SchemaViolation, match="user_id"):
        pv.decode(out.getvalue())


def test_older_version_read_by_current_reader(pv: AvroCodec) -> None:
    v1 = json.loads(resources.files("schemas").joinpath("history/page_view.v1.avsc").read_text())
    _, every = bundled_schemas()
    table = LocalSchemaTable(every)
    v1_id = next(i for i, src in table.ids().items() if src.endswith("page_view.v1.avsc"))
    assert v1_id != pv.schema_id
    out = io.BytesIO()
    out.write(b"\x00" + struct.pack(">I", v1_id))
    fastavro.schemaless_writer(
        out,
        _parse(v1),
        {"event_id": "e1", "user_id": "u1", "page_id": "p1", "ts": 42, "session_id": "s"},
    )
    record = pv.decode(out.getvalue())
    assert record == {
        "event_id": "e1",
        "user_id": "u1",
        "page_id": "p1",
        "ts": 42,
        "session_id": "s",
        "referrer": None,
        "context": {},
    }


def test_local_ids_are_deterministic() -> None:
    a = AvroCodec.bundled(PAGE_VIEW)
    b = AvroCodec.bundled(PAGE_VIEW)
    assert a.schema_id == b.schema_id
    assert a.schema_id != AvroCodec.bundled(RECOMMENDATION).schema_id
