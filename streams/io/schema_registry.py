"""Where schema ids come from.

The Confluent wire format puts a 4-byte schema id in front of every Avro body. With
``SCHEMA_REGISTRY_URL`` set, ids are registered and resolved in a Confluent-compatible
registry (subject = the record's full name). Otherwise they come from a deterministic
local table of the files in ``schemas/``: the id of a schema is the first 31 bits of the
SHA-256 of its parsing canonical form, so every process that ships the same files agrees
on the ids without talking to anyone, and adding a version never renumbers the others.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import fastavro
from fastavro.schema import to_parsing_canonical_form

from streams.errors import SchemaRegistryError, UnknownSchemaId


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one record schema."""

    full_name: str
    schema: dict[str, Any]
    canonical: str
    source: str

    @property
    def fingerprint_id(self) -> int:
        digest = hashlib.sha256(self.canonical.encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _load(text: str, source: str) -> SchemaVersion:
    schema = json.loads(text)
    parsed = fastavro.parse_schema(schema, _write_hint=False)
    canonical = to_parsing_canonical_form(parsed)
    full_name = f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")
    return SchemaVersion(full_name, schema, canonical, source)


def bundled_schemas() -> tuple[dict[str, SchemaVersion], list[SchemaVersion]]:
    """Current schema per full name, and every version (current and history)."""
    root = resources.files("schemas")
    current: dict[str, SchemaVersion] = {}
    every: list[SchemaVersion] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".avsc"):
            version = _load(entry.read_text(), entry.name)
            current[version.full_name] = version
            every.append(version)
    history = root.joinpath("history")
    if history.is_dir():
        for entry in sorted(history.iterdir(), key=lambda p: p.name):
            if entry.name.endswith(".avsc"):
                every.append(_load(entry.read_text(), f"history/{entry.name}"))
    return current, every


class SchemaRegistry(Protocol):
    def id_for(self, version: SchemaVersion) -> int: ...

    def schema_for(self, schema_id: int) -> dict[str, Any]: ...


class LocalSchemaTable:
    """Ids derived from the bundled files; no network."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_id: dict[int, SchemaVersion] = {}
        for version in versions:
            other = self._by_id.get(version.fingerprint_id)
            if other is not None and other.canonical != version.canonical:
                raise SchemaRegistryError(
                    f"schema id collision between {other.source} and {version.source}"
                )
            self._by_id[version.fingerprint_id] = version

    def id_for(self, version: SchemaVersion) -> int:
        if version.fingerprint_id not in self._by_id:
            raise SchemaRegistryError(f"{version.source} is not in the local schema table")
        return version.fingerprint_id

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        try:
            return self._by_id[schema_id].schema
        except KeyError:
            raise UnknownSchemaId(f"schema id {schema_id} is not in the local table") from None

    def ids(self) -> dict[int, str]:
        return {schema_id: v.source for schema_id, v in self._by_id.items()}


class HttpSchemaRegistry:
    """A Confluent-compatible schema registry over HTTP (register and look up by id)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self._url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and path.startswith("/schemas/ids/"):
                raise UnknownSchemaId(
                    f"schema registry has no schema {path.rsplit('/', 1)[-1]}"
                ) from exc
            raise SchemaRegistryError(f"schema registry {method} {path}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SchemaRegistryError(f"schema registry {self._url} unreachable: {exc}") from exc

    def id_for(self, version: SchemaVersion) -> int:
        with self._lock:
            if version.canonical not in self._ids:
                answer = self._request(
                    "POST",
                    f"/subjects/{version.full_name}/versions",
                    {"schema": json.dumps(version.schema)},
                )
                self._ids[version.canonical] = int(answer["id"])
                self._schemas[int(answer["id"])] = version.schema
            return self._ids[version.canonical]

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        with self._lock:
            cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        answer = self._request("GET", f"/schemas/ids/{schema_id}")
        schema = json.loads(answer["schema"])
        with self._lock:
            self._schemas[schema_id] = schema
        return schema
