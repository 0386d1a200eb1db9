"""Avro in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, body.

Schemas are parsed once per codec. Decoding resolves the writer's schema (looked up by id)
against the current reader schema, so events written with an older version of a record
are read as the current one. Every failure is a typed :class:`~streams.errors.DecodeError`
or :class:`~streams.errors.SchemaViolation`, so the caller can dead-letter it by name.

Timestamps travel as ``timestamp-millis`` and are handed to Python as epoch
milliseconds (``int``): converting to ``datetime`` and back would cost more than the
rest of the decode.
"""

from __future__ import annotations

import copy
import io
import struct
from typing import TYPE_CHECKING, Any

import fastavro
from fastavro.read import SchemaResolutionError

from streams.errors import (
    BadMagicByte,
    CorruptBody,
    MessageTooLarge,
    MessageTooShort,
    SchemaViolation,
    UnknownSchemaId,
)
from streams.io.avro_decoder import compile_decoder
from streams.io.schema_registry import (
    HttpSchemaRegistry,
    LocalSchemaTable,
    SchemaRegistry,
    SchemaVersion,
    bundled_schemas,
)

if TYPE_CHECKING:
    from streams.settings import Settings

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")
PAGE_VIEW = "streamrec.PageView"
RECOMMENDATION = "streamrec.Recommendation"
PAGE = "streamrec.Page"

# String fields that must not be empty, per record: an empty id cannot be answered.
_REQUIRED_TEXT = {
    PAGE_VIEW: ("event_id", "user_id", "page_id"),
    RECOMMENDATION: ("event_id", "user_id"),
    PAGE: ("page_id",),
}


def _wire_view(schema: Any) -> Any:
    """The schema with logical types removed: same bytes, plain ints for timestamps."""
    if isinstance(schema, dict):
        return {k: _wire_view(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_wire_view(s) for s in schema]
    return schema


def _parse(schema: dict[str, Any]) -> Any:
    # The write hint marks the result as parsed, so fastavro does not parse it again on
    # every schemaless_writer/schemaless_reader call (that was half of their cost).
    return fastavro.parse_schema(_wire_view(copy.deepcopy(schema)), _write_hint=True)


# -- compiled encoder ------------------------------------------------------------------------
# fastavro's schemaless_writer walks the schema for every record. For a record made only of
# strings, ints/longs, doubles, booleans, arrays and nested records (a Recommendation),
# ``_compile_encoder`` generates one straight-line Python function that writes exactly the
# bytes fastavro writes, about 3x faster. It accepts only values of the exact expected
# Python types (str, int in range, float, bool, list, dict with every field); anything else
# raises and the codec hands the record to fastavro, which encodes it or raises the error it
# always raised. tests/unit/test_codec.py compares the two byte for byte.


class _NotFast(Exception):
    """The compiled encoder does not take this record; fastavro will."""


_SMALL_VARINTS = [bytes([n]) for n in range(128)]


def _varint(n: int) -> bytes:
    """Zig-zag varint of a long (Avro ``int`` and ``long``)."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SIZES = [_varint(n) for n in range(1024)]  # length prefixes of short strings and arrays
_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


_NO_DEFAULT = object()


def _type_name(schema: Any) -> Any:
    if isinstance(schema, dict) and schema.get("type") in (
        "string",
        "int",
        "long",
        "double",
        "boolean",
    ):
        return schema["type"]
    return schema


def _compile_encoder(schema: Any, header: bytes) -> Any:
    """A function ``record -> header + Avro body`` for ``schema``, or None if unsupported."""
    lines = ["def encode(r0):", "    parts = [HEADER]", "    a = parts.append"]

    def emit(depth: int, code: str) -> None:
        lines.append("    " * (depth + 1) + code)

    def value(sch: Any, var: str, depth: int) -> bool:
        sch = _type_name(sch)
        if sch == "string":
            emit(depth, f"if type({var}) is not str: raise _NotFast")
            emit(depth, f"b = {var}.encode()")
            emit(depth, "a(_SIZES[len(b)] if len(b) < 1024 else _varint(len(b))); a(b)")
        elif isinstance(sch, str) and sch in _RANGES:
            lo, hi = _RANGES[sch]
            emit(depth, f"if type({var}) is not int or not {lo} <= {var} <= {hi}: raise _NotFast")
            emit(depth, f"a(_varint({var}))")
        elif sch == "double":
            emit(depth, f"if type({var}) is not float: raise _NotFast")
            emit(depth, f"a(_pack_double({var}))")
        elif sch == "boolean":
            emit(depth, f"if type({var}) is not bool: raise _NotFast")
            emit(depth, f"a(b'\\x01' if {var} else b'\\x00')")
        elif isinstance(sch, dict) and sch.get("type") == "array":
            item = f"x{depth + 1}"
            emit(depth, f"if type({var}) is not list: raise _NotFast")
            emit(depth, f"if {var}:")
            emit(depth + 1, f"a(_SIZES[len({var})] if len({var}) < 1024 else _varint(len({var})))")
            emit(depth + 1, f"for {item} in {var}:")
            if not value(sch.get("items"), item, depth + 2):
                return False
            emit(depth, "a(b'\\x00')")
        elif isinstance(sch, dict) and sch.get("type") == "record":
            return record(sch, var, depth)
        else:
            return False
        return True

    def record(sch: dict[str, Any], var: str, depth: int) -> bool:
        emit(depth, f"if type({var}) is not dict: raise _NotFast")
        for i, fld in enumerate(sch.get("fields", ())):
            name = fld.get("name")
            if not isinstance(name, str):
                return False
            field_var = f"f{depth}_{i}"
            default = fld.get("default", _NO_DEFAULT)
            if type(default) in (str, int, float, bool):
                # A field added later with a default: writers that predate it leave it out.
                emit(depth, f"{field_var} = {var}.get({name!r}, {default!r})")
            else:
                emit(depth, f"{field_var} = {var}[{name!r}]")
            if not value(fld.get("type"), field_var, depth):
                return False
        return True

    if not (isinstance(schema, dict) and schema.get("type") == "record"):
        return None
    if not record(schema, "r0", 0):
        return None
    lines.append("    return b''.join(parts)")
    namespace: dict[str, Any] = {
        "HEADER": header,
        "_NotFast": _NotFast,
        "_SIZES": _SIZES,
        "_varint": _varint,
        "_pack_double": struct.Struct("<d").pack,
    }
    exec(compile("\n".join(lines), f"<avro encoder {schema.get('name')}>", "exec"), namespace)
    return namespace["encode"]


class AvroCodec:
    """Encode and decode one record type (e.g. ``streamrec.PageView``).

    >>> codec = AvroCodec.bundled("streamrec.PageView")
    >>> data = codec.encode({"event_id": "e1", "user_id": "u1", "page_id": "p1", "ts": 5})
    >>> data[0], codec.decode(data)["page_id"]
    (0, 'p1')
    """

    def __init__(
        self,
        full_name: str,
        current: SchemaVersion,
        registry: SchemaRegistry,
        max_bytes: int = 1 << 20,
    ) -> None:
        self.full_name = full_name
        self.max_bytes = max_bytes
        self._registry = registry
        self._schema_id = registry.id_for(current)
        self._header = HEADER.pack(MAGIC_BYTE, self._schema_id)
        self._writer = _parse(current.schema)
        self._fast_encode = _compile_encoder(_wire_view(current.schema), self._header)
        self._readers: dict[int, tuple[Any, Any]] = {self._schema_id: (self._writer, None)}
        # Messages written with the current schema (nearly all) take the compiled reader;
        # older versions need schema resolution, which fastavro does.
        self._fast_decode = compile_decoder(_wire_view(current.schema))
        self._required = _REQUIRED_TEXT.get(full_name, ())

    @classmethod
    def bundled(
        cls,
        full_name: str,
        registry_url: str | None = None,
        max_bytes: int = 1 << 20,
    ) -> AvroCodec:
        """A codec for ``full_name`` from the files in ``schemas/``."""
        current, every = bundled_schemas()
        if full_name not in current:
            raise SchemaViolation(f"no schema named {full_name} in schemas/")
        registry: SchemaRegistry = (
            HttpSchemaRegistry(registry_url) if registry_url else LocalSchemaTable(every)
        )
        return cls(full_name, current[full_name], registry, max_bytes)

    @property
    def schema_id(self) -> int:
        return self._schema_id

    # -- encode -------------------------------------------------------------------------
    def encode(self, record: dict[str, Any]) -> bytes:
        """Serialise ``record`` with the current schema; :class:`SchemaViolation` if it
        does not fit."""
        self._check(record)
        if self._fast_encode is not None:
            try:
                return self._fast_encode(record)
            except Exception:  # fastavro below encodes it or raises the error it always did
                pass
        out = io.BytesIO()
        out.write(self._header)
        try:
            fastavro.schemaless_writer(out, self._writer, record)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            raise SchemaViolation(f"{self.full_name}: {exc}") from exc
        return out.getvalue()

    # -- decode -------------------------------------------------------------------------
    def schema_id_of(self, data: bytes | None) -> int:
        """Check the framing and return the schema id, without decoding the body."""
        if data is None or len(data) < HEADER.size:
            size = 0 if data is None else len(data)
            raise MessageTooShort(f"{size} bytes; a framed Avro message has at least 5")
        if len(data) > self.max_bytes:
            raise MessageTooLarge(f"{len(data)} bytes is over the limit of {self.max_bytes}")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise BadMagicByte(f"first byte is {data[0]}, expected {MAGIC_BYTE}")
        return int(schema_id)

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """Read one framed message as the current version of the record."""
        fast = self._fast_decode
        # Framed with the current schema's header (so the framing checks pass): the
        # compiled reader; anything it does not read goes the long way below.
        if (
            fast is not None
            and data
            and data.startswith(self._header)
            and len(data) <= self.max_bytes
        ):
            try:
                fast_record = fast(data, HEADER.size)
            except Exception:  # fastavro below reads it or raises the error it always did
                pass
            else:
                self._check(fast_record)
                return fast_record
        schema_id = self.schema_id_of(data)
        assert data is not None
        writer, reader = self._readers.get(schema_id) or self._resolve(schema_id)
        buffer = io.BytesIO(data)
        buffer.seek(HEADER.size)
        try:
            record = fastavro.schemaless_reader(buffer, writer, reader)
        except SchemaResolutionError as exc:
            raise SchemaViolation(
                f"schema id {schema_id} cannot be read as current: {exc}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise CorruptBody(f"invalid UTF-8 in a string: {exc.reason}") from exc
        except (EOFError, ValueError, IndexError, struct.error, MemoryError, OverflowError) as exc:
            raise CorruptBody(f"body does not decode: {exc!r}") from exc
        if buffer.tell() != len(data):
            raise CorruptBody(f"{len(data) - buffer.tell()} bytes left after the record")
        if not isinstance(record, dict):
            raise SchemaViolation(f"{self.full_name} body is not a record")
        self._check(record)
        return record

    def _resolve(self, schema_id: int) -> tuple[Any, Any]:
        writer_schema = self._registry.schema_for(schema_id)
        name = f"{writer_schema.get('namespace', '')}.{writer_schema.get('name')}".lstrip(".")
        if name != self.full_name:
            raise UnknownSchemaId(
                f"schema id {schema_id} is {name}, not a version of {self.full_name}"
            )
        writer = _parse(writer_schema)
        pair = (writer, self._writer)
        self._readers[schema_id] = pair
        return pair

    def _check(self, record: dict[str, Any]) -> None:
        if not isinstance(record, dict):
            raise SchemaViolation(
                f"{self.full_name} must be a mapping, got {type(record).__name__}"
            )
        for name in self._required:
            value = record.get(name)
            if not isinstance(value, str) or not value:
                raise SchemaViolation(f"{self.full_name}.{name} must be a non-empty string")


def page_view_codec(settings: Settings) -> AvroCodec:
    """The PageView codec, refusing events over ``max_event_bytes``."""
    return AvroCodec.bundled(
        PAGE_VIEW, settings.schema_registry_url, max_bytes=settings.max_event_bytes
    )


def recommendation_codec(settings: Settings) -> AvroCodec:
    """The Recommendation codec."""
    return AvroCodec.bundled(RECOMMENDATION, settings.schema_registry_url)
