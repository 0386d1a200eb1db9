"""The compiled Recommendation encoder writes fastavro's bytes and leaves odd records to it."""

from __future__ import annotations

import io

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import SchemaViolation
from streams.io.codec import PAGE_VIEW, RECOMMENDATION, AvroCodec

ids = st.text(min_size=1, max_size=40)
longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
recommendations = st.fixed_dictionaries(
    {
        "event_id": ids,
        "user_id": ids,
        "items": st.lists(
            st.fixed_dictionaries(
                {"page_id": st.text(max_size=1_200), "score": st.floats(allow_nan=False)}
            ),
            max_size=12,
        ),
        "model_name": st.text(max_size=20),
        "model_version": longs,
        "page_view_ts": longs,
        "produced_at": longs,
        "arm": st.text(max_size=12),
    }
)


def _fastavro_bytes(codec: AvroCodec, record: dict) -> bytes:
    out = io.BytesIO()
    out.write(codec._header)
    fastavro.schemaless_writer(out, codec._writer, record)
    return out.getvalue()


@given(recommendations)
@settings(max_examples=300, deadline=None)
def test_compiled_encoder_writes_fastavro_bytes(record: dict) -> None:
    codec = AvroCodec.bundled(RECOMMENDATION)
    assert codec._fast_encode is not None
    assert codec._fast_encode(record) == _fastavro_bytes(codec, record)
    assert codec.decode(codec.encode(record)) == record


def test_long_lists_and_strings_take_multi_byte_lengths() -> None:
    codec = AvroCodec.bundled(RECOMMENDATION)
    record = {
        "event_id": "e" * 5_000,
        "user_id": "ü" * 700,
        "model_name": "m",
        "items": [{"page_id": f"p{i}", "score": i / 7} for i in range(1_500)],
        "model_version": 2**40,
        "page_view_ts": -1,
        "produced_at": 0,
        "arm": "challenger",
    }
    assert codec._fast_encode(record) == _fastavro_bytes(codec, record)


@pytest.mark.parametrize(
    "change",
    [
        {"items": [{"page_id": "p", "score": 1}]},  # an int score: fastavro takes it
        {"items": ({"page_id": "p", "score": 0.5},)},  # a tuple: fastavro takes it
        {"model_version": True},
    ],
)
def test_odd_but_valid_records_fall_back_to_fastavro(change: dict) -> None:
    codec = AvroCodec.bundled(RECOMMENDATION)
    record = {
        "event_id": "e",
        "user_id": "u",
        "items": [],
        "model_name": "m",
        "model_version": 1,
        "page_view_ts": 2,
        "produced_at": 3,
        "arm": "",
        **change,
    }
    assert codec.encode(record) == _fastavro_bytes(codec, record)


@pytest.mark.parametrize(
    "change",
    [
        {"model_version": 2**63},
        {"items": [{"page_id": "p"}]},
        {"items": [{"page_id": 5, "score": 0.5}]},
        {"produced_at": "now"},
        {"items": [{"page_id": "\ud800", "score": 0.5}]},
    ],
)
def test_invalid_records_are_still_schema_violations(change: dict) -> None:
    codec = AvroCodec.bundled(RECOMMENDATION)
    record = {
        "event_id": "e",
        "user_id": "u",
        "items": [],
        "model_name": "m",
        "model_version": 1,
        "page_view_ts": 2,
        "produced_at": 3,
        "arm": "",
        **change,
    }
    with pytest.raises(SchemaViolation):
        codec.encode(record)


def test_page_views_keep_fastavro() -> None:
    """Unions and maps are not compiled: PageView encodes through fastavro as before."""
    codec = AvroCodec.bundled(PAGE_VIEW)
    assert codec._fast_encode is None
    record = {
        "event_id": "e",
        "user_id": "u",
        "page_id": "p",
        "ts": 5,
        "session_id": None,
        "referrer": "r",
        "context": {"a": "b"},
    }
    assert codec.encode(record) == _fastavro_bytes(codec, record)
