"""The compiled reader reads what fastavro reads, and leaves every odd message to it."""

from __future__ import annotations

import io

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import CorruptBody, SchemaViolation, SerializationError
from streams.io.avro_decoder import Unsupported, compile_decoder
from streams.io.codec import HEADER, PAGE_VIEW, RECOMMENDATION, AvroCodec, _parse, _wire_view

texts = st.text(max_size=300)
longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
page_views = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=40),
        "user_id": st.text(min_size=1, max_size=40),
        "page_id": st.text(min_size=1, max_size=200),
        "ts": longs,
        "session_id": st.none() | texts,
        "referrer": st.none() | texts,
        "context": st.dictionaries(texts, texts, max_size=5),
    }
)

# Every type the generator handles, in one record: unions of several branches, nested
# records, arrays and maps of them.
EVERYTHING = {
    "type": "record",
    "name": "Everything",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "u", "type": ["null", "long", "string", "boolean"]},
        {
            "name": "items",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Item",
                    "fields": [
                        {"name": "page_id", "type": "string"},
                        {"name": "tags", "type": {"type": "map", "values": "double"}},
                    ],
                },
            },
        },
        {"name": "n", "type": "null"},
    ],
}
everything = st.fixed_dictionaries(
    {
        "i": st.integers(min_value=-(2**31), max_value=2**31 - 1),
        "d": st.floats(allow_nan=False),
        "b": st.booleans(),
        "u": st.none() | longs | texts | st.booleans(),
        "items": st.lists(
            st.fixed_dictionaries(
                {
                    "page_id": texts,
                    "tags": st.dictionaries(texts, st.floats(allow_nan=False), max_size=3),
                }
            ),
            max_size=4,
        ),
        "n": st.none(),
    }
)


def _fastavro_body(schema: dict, record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _parse(schema), record)
    return out.getvalue()


def _fastavro_read(schema: dict, body: bytes) -> object:
    return fastavro.schemaless_reader(io.BytesIO(body), _parse(schema), None)


@given(page_views)
@settings(max_examples=300, deadline=None)
def test_page_views_read_as_fastavro_reads_them(record: dict) -> None:
    codec = AvroCodec.bundled(PAGE_VIEW)
    assert codec._fast_decode is not None
    data = codec.encode(record)
    assert codec._fast_decode(data, HEADER.size) == record
    assert codec.decode(data) == record


@given(everything)
@settings(max_examples=300, deadline=None)
def test_every_supported_type_reads_as_fastavro_reads_it(record: dict) -> None:
    decode = compile_decoder(EVERYTHING)
    assert decode is not None
    body = _fastavro_body(EVERYTHING, record)
    decoded = decode(body, 0)
    assert decoded == _fastavro_read(EVERYTHING, body)
    assert type(decoded["u"]) is type(record["u"])


def test_blocks_with_a_byte_size_are_read() -> None:
    # Writers may prefix a block with a negative count and its size in bytes.
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": {"type": "array", "items": "long"}}],
    }
    body = bytes([3, 4, 2, 4, 0])  # count -2, size 2 bytes, items 1 and 2, end
    assert compile_decoder(schema)(body, 0) == {"a": [1, 2]} == _fastavro_read(schema, body)  # type: ignore[misc]


def test_types_it_does_not_generate_leave_the_schema_to_fastavro() -> None:
    for field_type in ("bytes", "float", {"type": "fixed", "name": "F", "size": 2}):
        schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": field_type}]}
        assert compile_decoder(schema) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",  # nothing
        b"\x02",  # a string of 1 byte with no byte
        b"\x01a",  # a negative length
        b"\x02\xff",  # invalid UTF-8
        b"\x02a\x00",  # a byte left after the record
        b"\xff" * 11,  # a varint longer than a long
    ],
)
def test_odd_bytes_raise_unsupported_or_fail_to_index(body: bytes) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}
    decode = compile_decoder(schema)
    assert decode is not None
    with pytest.raises((Unsupported, IndexError, UnicodeDecodeError)):
        decode(body, 0)


@pytest.mark.parametrize(
    "field_type, body",
    [
        ("int", b"\x80\x80\x80\x80\x10"),  # 2**31: over an int
        ("boolean", b"\x02"),  # neither 0 nor 1
        (["null", "string"], b"\x04"),  # union index 2 of 2 branches
    ],
)
def test_values_fastavro_may_read_otherwise_are_left_to_it(field_type: object, body: bytes) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": field_type}]}
    with pytest.raises(Unsupported):
        compile_decoder(schema)(body, 0)  # type: ignore[misc]


@given(page_views, st.data())
@settings(max_examples=300, deadline=None)
def test_a_damaged_message_is_accepted_or_refused_as_fastavro_does(
    record: dict, data: st.DataObject
) -> None:
    """Cut or flip a byte of a page view: the codec answers what fastavro alone answers."""
    codec = AvroCodec.bundled(PAGE_VIEW)
    plain = AvroCodec.bundled(PAGE_VIEW)
    plain._fast_decode = None
    message = bytearray(codec.encode(record))
    at = data.draw(st.integers(min_value=HEADER.size, max_value=len(message) - 1))
    if data.draw(st.booleans()):
        del message[at:]
    else:
        message[at] = data.draw(st.integers(min_value=0, max_value=255))
    damaged = bytes(message)
    try:
        expected: object = plain.decode(damaged)
    except SerializationError as exc:
        expected = type(exc)
    try:
        got: object = codec.decode(damaged)
    except SerializationError as exc:
        got = type(exc)
    assert got == expected


def test_codec_errors_are_the_ones_fastavro_gave() -> None:
    codec = AvroCodec.bundled(PAGE_VIEW)
    good = codec.encode({"event_id": "e", "user_id": "u", "page_id": "p", "ts": 1})
    with pytest.raises(CorruptBody):
        codec.decode(good + b"\x00")
    with pytest.raises(CorruptBody):
        codec.decode(good[:-3])
    empty_user = codec.encode({"event_id": "e", "user_id": "u", "page_id": "p", "ts": 1})
    empty_user = empty_user.replace(b"\x02u", b"\x00", 1)
    with pytest.raises(SchemaViolation):
        codec.decode(empty_user)


def test_recommendations_take_the_compiled_reader_too() -> None:
    codec = AvroCodec.bundled(RECOMMENDATION)
    assert codec._fast_decode is not None
    assert compile_decoder(_wire_view({"type": "string"})) is None  # not a record
