"""What retrain tasks hand the driver: PageView fields read fast, ranges merged in order."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import StreamrecError
from streams.io.codec import PAGE_VIEW, AvroCodec
from streams.retrain.job import merge_ranges
from streams.retrain.kafka_ranges import RangeRead, RangeReport
from streams.retrain.view_fields import fields_reader

CODEC = AvroCodec.bundled(PAGE_VIEW, max_bytes=300)
FAST = fields_reader(CODEC)
ids = st.text(min_size=0, max_size=80)
views = st.fixed_dictionaries(
    {
        "event_id": ids,
        "user_id": ids,
        "page_id": ids,
        "ts": st.integers(-(2**63), 2**63 - 1),
        "session_id": st.none() | ids,
        "referrer": st.none() | ids,
        "context": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    }
)


def _decoded(data: bytes) -> tuple[str, str, int] | None:
    try:
        view = CODEC.decode(data)
    except StreamrecError:
        return None
    return view["user_id"], view["page_id"], view["ts"]


def _encoded(view: dict[str, Any]) -> bytes | None:
    try:
        return CODEC.encode(view)
    except StreamrecError:  # empty ids: the codec refuses to write them
        return None


@settings(max_examples=300, deadline=None)
@given(views, st.data())
def test_the_fast_path_reads_what_decode_reads_or_leaves_it_to_decode(
    view: dict[str, Any], data: st.DataObject
) -> None:
    encoded = _encoded(view)
    if encoded is None:
        return
    assert FAST(encoded) in (None, _decoded(encoded))
    # Damaged copies (a byte changed, cut short, a byte too many): the fast path never
    # accepts what decode refuses, nor reads other values.
    i = data.draw(st.integers(0, len(encoded) - 1))
    damaged = [
        encoded[:i] + bytes([data.draw(st.integers(0, 255))]) + encoded[i + 1 :],
        encoded[:i],
        encoded + b"\x00",
    ]
    for bad in damaged:
        fast = FAST(bad)
        assert fast is None or fast == _decoded(bad), (bad, fast)


def test_a_ten_byte_timestamp_past_64_bits_reads_as_decode_reads_it() -> None:
    # Found by the property above: the tenth byte of a varint carries bits past 64.
    bad = (
        b"\x00p\x95)\xa1\x020\x080000\x1e0\xc2\x80\xc2\x80\xc2\x80\xf0\x90\x80\x80"
        b"\xf0\x90\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02\x00\x00\x00"
    )
    fast = FAST(bad)
    assert fast is None or fast == _decoded(bad)


def test_the_fast_path_takes_the_common_shape_and_not_the_rest() -> None:
    common = {"event_id": "e1", "user_id": "ü", "page_id": "p", "ts": 1_700_000_000_000}
    assert FAST(CODEC.encode(common)) == ("ü", "p", 1_700_000_000_000)
    assert FAST(CODEC.encode({**common, "session_id": "s", "referrer": ""})) == (
        "ü",
        "p",
        1_700_000_000_000,
    )
    # Left to decode: a context, a long id, another schema id, bad framing.
    assert FAST(CODEC.encode({**common, "context": {"a": "b"}})) is None
    assert FAST(CODEC.encode({**common, "page_id": "p" * 64})) is None
    assert FAST(b"\x00\x00\x00\x03\xe7" + CODEC.encode(common)[5:]) is None
    assert FAST(b"not avro") is None


def _range(
    partition: int,
    rows: list[tuple[int, int, str, str]],
    bad: tuple[tuple[int, str], ...] | list[tuple[int, str]] = (),
    passed_at: int | None = None,
) -> RangeRead:
    """Columns of ``(offset, ts, user, page)`` rows as a task returns them."""
    users = sorted({u for _, _, u, _ in rows}, reverse=True)  # tables in any order
    pages = sorted({p for _, _, _, p in rows}, reverse=True)
    report = RangeReport(partition, rows[0][0] if rows else 0, None, passed_at=passed_at)
    return RangeRead(
        report,
        np.array([t for _, t, _, _ in rows], dtype=np.int64),
        np.array([o for o, _, _, _ in rows], dtype=np.int64),
        np.array([users.index(u) for _, _, u, _ in rows], dtype=np.int32),
        np.array([pages.index(p) for _, _, _, p in rows], dtype=np.int32),
        users,
        pages,
        list(bad),
    )


def test_ranges_merge_in_learning_order_and_stop_where_a_partition_passed_the_end() -> None:
    reads = [
        _range(0, [(0, 10, "a", "x"), (1, 30, "b", "y")], bad=[(2, "too_short")]),
        # Partition 0 passed the end at offset 4 (seen by its second task): 4 and 5 go.
        _range(0, [(3, 20, "a", "z"), (5, 5, "c", "x")], bad=[(6, "bad_magic_byte")], passed_at=4),
        _range(1, [(7, 20, "c", "y"), (8, 20, "a", "x")]),
        _range(1, []),
    ]
    events, spans, bad = merge_ranges(reads)
    # Time, then partition, then offset.
    assert events.rows() == [
        ("a", "x", 10),
        ("a", "z", 20),
        ("c", "y", 20),
        ("a", "x", 20),
        ("b", "y", 30),
    ]
    assert events.pages == sorted(events.pages)
    assert bad == {"too_short": 1}
    assert spans == {0: (0, 3, 4), 1: (7, 8, 2)}
    assert len(merge_ranges([])[0]) == 0
