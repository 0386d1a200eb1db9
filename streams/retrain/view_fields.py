"""User, page and time of a framed PageView, read without building a record.

A retrain reads every record of the log and needs three of its fields. ``AvroCodec.decode``
costs a few microseconds per record (a ``BytesIO``, fastavro's generic reader, a dict,
the checks); :func:`fields_reader` reads the common shape of the *current* PageView
directly from the bytes, about three times faster, and answers ``None`` for anything
else, which the caller hands to ``AvroCodec.decode``: that decodes older schema versions
and raises the named error of a bad record, as before.

The fast path accepts a record only if ``decode`` would accept it with the same values:
the codec's current schema id and size limit, every field parsed to the last byte, ids
non-empty, every string valid UTF-8. It takes the shape most apps write (strings under 64
bytes, ``session_id`` and ``referrer`` null or a string, an empty ``context``); any other
record takes the slow path. If the bundled schema ever changes shape, the fast path turns
itself off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.io.codec import HEADER, MAGIC_BYTE, AvroCodec
from streams.io.schema_registry import bundled_schemas

#: The PageView fields the fast path knows, in wire order, with their Avro types.
_SHAPE = [
    ("event_id", "string"),
    ("user_id", "string"),
    ("page_id", "string"),
    ("ts", "long"),
    ("session_id", ["null", "string"]),
    ("referrer", ["null", "string"]),
    ("context", "map"),
]

Fields = Callable[[bytes], "tuple[str, str, int] | None"]


def _shape_of(schema: dict[str, Any]) -> list[tuple[str, Any]]:
    shape = []
    for f in schema.get("fields", []):
        t = f["type"]
        shape.append((f["name"], t.get("type") if isinstance(t, dict) else t))
    return shape


def fields_reader(codec: AvroCodec) -> Fields:
    """A function ``bytes -> (user_id, page_id, ts) | None`` for ``codec``'s records."""
    current, _ = bundled_schemas()
    schema = current.get(codec.full_name)
    if schema is None or _shape_of(schema.schema) != _SHAPE:
        return lambda data: None
    header = HEADER.pack(MAGIC_BYTE, codec.schema_id)
    max_bytes = codec.max_bytes

    def read(data: bytes) -> tuple[str, str, int] | None:
        if data is None or len(data) > max_bytes or data[:5] != header:
            return None
        try:
            # Strings: a one-byte zigzag length (0 < 2n < 128, even) then n bytes.
            n = data[5]
            if n & 0x81 or not n:
                return None
            pos = 6 + (n >> 1)
            data[6:pos].decode()  # event_id: valid UTF-8, not kept
            n = data[pos]
            if n & 0x81 or not n:
                return None
            start, pos = pos + 1, pos + 1 + (n >> 1)
            user = data[start:pos].decode()
            n = data[pos]
            if n & 0x81 or not n:
                return None
            start, pos = pos + 1, pos + 1 + (n >> 1)
            page = data[start:pos].decode()
            # ts: a zigzag varint of at most 10 bytes.
            value = shift = 0
            while True:
                b = data[pos]
                pos += 1
                value |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if shift > 63:
                    return None
            value &= 0xFFFF_FFFF_FFFF_FFFF  # bits past 64 are dropped, as decode drops them
            ts = (value >> 1) ^ -(value & 1)
            for _ in range(2):  # session_id, referrer: union index 0 (null) or 1 (string)
                b = data[pos]
                if b == 2:
                    n = data[pos + 1]
                    if n & 0x81:
                        return None
                    start, pos = pos + 2, pos + 2 + (n >> 1)
                    if pos > len(data):
                        return None
                    data[start:pos].decode()
                elif b == 0:
                    pos += 1
                else:
                    return None
            if data[pos] != 0 or pos + 1 != len(data):  # context: an empty map, then the end
                return None
        except (IndexError, UnicodeDecodeError):
            return None
        return user, page, ts

    return read
