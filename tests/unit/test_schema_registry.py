"""The codec against a Confluent-compatible registry (a small in-process fake of its API)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from streams.errors import SchemaRegistryError, UnknownSchemaId
from streams.io.codec import PAGE_VIEW, AvroCodec


class _Registry(BaseHTTPRequestHandler):
    schemas: dict[int, str] = {}
    ids: dict[str, int] = {}

    def _reply(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        assert self.path.startswith("/subjects/streamrec.") and self.path.endswith("/versions")
        schema = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["schema"]
        if schema not in self.ids:
            self.ids[schema] = 100 + len(self.ids)
            self.schemas[self.ids[schema]] = schema
        self._reply(200, {"id": self.ids[schema]})

    def do_GET(self) -> None:
        schema_id = int(self.path.rsplit("/", 1)[-1])
        if schema_id in self.schemas:
            self._reply(200, {"schema": self.schemas[schema_id]})
        else:
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    _Registry.schemas, _Registry.ids = {}, {}
    server = HTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_ids_come_from_the_registry(registry_url: str) -> None:
    writer = AvroCodec.bundled(PAGE_VIEW, registry_url)
    assert writer.schema_id == 100
    data = writer.encode({"event_id": "e", "user_id": "u", "page_id": "p", "ts": 3})
    assert data[1:5] == (100).to_bytes(4, "big")
    # a second process resolves the id by asking the registry
    reader = AvroCodec.bundled(PAGE_VIEW, registry_url)
    reader._readers.clear()
    assert reader.decode(data)["page_id"] == "p"


def test_unknown_id_in_registry(registry_url: str) -> None:
    codec = AvroCodec.bundled(PAGE_VIEW, registry_url)
    data = codec.encode({"event_id": "e", "user_id": "u", "page_id": "p", "ts": 3})
    with pytest.raises(UnknownSchemaId):
        codec.decode(data[:1] + (999).to_bytes(4, "big") + data[5:])


def test_unreachable_registry_is_a_clear_error() -> None:
    with pytest.raises(SchemaRegistryError, match="unreachable"):
        AvroCodec.bundled(PAGE_VIEW, "http://127.0.0.1:1")
