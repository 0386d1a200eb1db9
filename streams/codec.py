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
from collections.abc import Iterable
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from .errors import (
    BadMagicByte,
    CorruptBody,
    MessageTooLarge,
    MessageTooShort,
    SchemaViolation,
    UnknownSchemaId,
)
from .schema_registry import (
    HttpSchemaRegistry,
    LocalSchemaTable,
    SchemaRegistry,
    SchemaVersion,
    bundled_schemas,
)

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")
PAGE_VIEW = "streamrec.PageView"
RECOMMENDATION = "streamrec.Recommendation"

# String fields that must not be empty, per record: an empty id cannot be answered.
_REQUIRED_TEXT = {
    PAGE_VIEW: ("event_id", "user_id", "page_id"),
    RECOMMENDATION: ("event_id", "user_id"),
}


def _wire_view(schema: Any) -> Any:
    """The schema with logical types removed: same bytes, plain ints for timestamps."""
    if isinstance(schema, dict):
        return {k: _wire_view(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_wire_view(s) for s in schema]
    return schema


def _parse(schema: dict[str, Any]) -> Any:
    return fastavro.parse_schema(_wire_view(copy.deepcopy(schema)), _write_hint=False)


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
        self._readers: dict[int, tuple[Any, Any]] = {self._schema_id: (self._writer, None)}
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
        schema_id = self.schema_id_of(data)
        assert data is not None
        writer, reader = self._readers.get(schema_id) or self._resolve(schema_id)
        buffer = io.BytesIO(data)
        buffer.seek(HEADER.size)
        try:
            record = fastavro.schemaless_reader(buffer, writer, reader)
        except SchemaResolutionError as exc:
            raise SchemaViolation(
                f"schema id {schema_id} cannot be read as current: {exc}") from exc
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

    def decode_many(self, values: Iterable[bytes | None]) -> list[dict[str, Any] | Exception]:
        """Decode each value; failures are returned in place as the exception."""
        out: list[dict[str, Any] | Exception] = []
        for value in values:
            try:
                out.append(self.decode(value))
            except (SchemaViolation, MessageTooShort, MessageTooLarge, BadMagicByte,
                    UnknownSchemaId, CorruptBody) as exc:
                out.append(exc)
        return out

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
                f"{self.full_name} must be a mapping, got {type(record).__name__}")
        for name in self._required:
            value = record.get(name)
            if not isinstance(value, str) or not value:
                raise SchemaViolation(f"{self.full_name}.{name} must be a non-empty string")
