"""The OpenAPI 3 description of a scorer's REST API, served at ``/openapi.json``.

One dict, the one place that lists the endpoints: each operation names the role it
needs (``x-streamrec-role``: open, read or admin), which is what the auth middleware
enforces (:func:`roles`). A test checks that every route the scorer registers is
described here, and schemathesis checks a running scorer against it.
"""

from __future__ import annotations

import copy
from typing import Any

from streams.api_tokens import Role
from streams.catalog.rules import MAX_CATEGORIES, MAX_EXCLUDE, MAX_VALUE_CHARS, VALUE_PATTERN
from streams.settings import MAX_K

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}


def _rule_values(most: int) -> dict[str, Any]:
    """A repeatable query value of a per-request rule (see streams/catalog/rules.py)."""
    text = {"type": "string", "pattern": VALUE_PATTERN, "maxLength": MAX_VALUE_CHARS}
    return {"type": "array", "items": text, "maxItems": most}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_REFUSED = {
    "401": {
        "description": "No bearer token (`missing token`), or not one of "
        "STREAMREC_API_TOKENS (`invalid token`; the challenge then says "
        '`error="invalid_token"`). Only when tokens are set.',
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": _ref("Error")}},
    },
}
_ADMIN_REFUSED = {
    **_REFUSED,
    "403": _json(
        "The token's role is read; this needs admin. Or this scorer's Redis user may not"
        " move models (a scorer under the Redis ACL of docs/redis-acl.md).",
        _ref("Error"),
    ),
}
_PROBE = {
    "200": _json(
        "Ready (`ok`, or `degraded` while Redis is away or the page-view consumer is stalled).",
        _ref("Readiness"),
    ),
    "503": _json(
        "Starting (no model load attempted yet) or the broker is away.", _ref("Readiness")
    ),
}
_READ = {"security": [{"bearer": []}], "x-streamrec-role": "read"}
_ADMIN = {"security": [{"bearer": []}], "x-streamrec-role": "admin"}
_OPEN = {"security": [], "x-streamrec-role": "open"}


def _action(summary: str, description: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        **_ADMIN,
        "summary": summary,
        "description": description,
        **extra,
    }


_MOVED = _json("Where current points now.", _ref("ModelAction"))
_NOT_NOW = _json(
    "Refused: the version does not verify or load, nothing to roll back to, or serving would"
    " move to another namespace while an experiment runs.",
    _ref("Error"),
)
_REDIS_AWAY = _json("Redis is not reachable; nothing changed.", _ref("Error"))

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "streamrec scorer",
        "version": "1",
        "description": "Recommendations, probes, metrics and model actions of one scorer. "
        "With STREAMREC_API_TOKENS set, every operation but the probes needs "
        "`Authorization: Bearer <token>`; actions that move models need an admin token. "
        "A path that is none of these answers 404, and a method a path does not take 405 "
        "(with `Allow`), both with an `Error` body (`components/responses`); with tokens "
        "set, only after a read token (401 before).",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        # What a request matching no operation gets (streams/scorer/not_found.py).
        "responses": {
            "NotFound": _json("No such endpoint.", _ref("Error")),
            "MethodNotAllowed": {
                "description": "The path does not take this method.",
                "headers": {"Allow": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": _ref("Error")}},
            },
        },
        "schemas": {
            "Error": _ERROR,
            "Recommendations": {
                "type": "object",
                "required": [
                    "user_id",
                    "items",
                    "model_name",
                    "model_version",
                    "history_length",
                    "history_available",
                ],
                "properties": {
                    "user_id": {"type": "string"},
                    "items": {
                        "type": "array",
                        "maxItems": MAX_K,
                        "items": {
                            "type": "object",
                            "required": ["page_id", "score"],
                            "properties": {
                                "page_id": {"type": "string"},
                                "score": {"type": "number"},
                            },
                        },
                    },
                    "model_name": {"type": "string"},
                    "arm": {
                        "type": "string",
                        "enum": ["", "champion", "challenger"],
                        "description": "experiment arm that served the list (empty: none)",
                    },
                    "model_version": {"type": "integer", "minimum": 0},
                    "history_length": {"type": "integer", "minimum": 0},
                    "history_available": {"type": "boolean"},
                },
            },
            "Readiness": {
                "type": "object",
                "required": ["status", "model_version", "assigned_partitions"],
                "properties": {
                    "status": {"type": "string", "enum": ["starting", "ok", "degraded"]},
                    "model_name": {"type": "string", "description": "STREAMREC_MODEL_NAME."},
                    "model_namespace": {
                        "type": "string",
                        "description": "Whose snapshots this scorer serves: the model "
                        "name's own namespace, or the one promoted into it.",
                    },
                    "model_version": {"type": "integer", "minimum": 0},
                    "model_class": {"type": "string", "nullable": True},
                    "snapshot_created_at": {"type": "number", "nullable": True},
                    "snapshots_rejected": {"type": "integer", "minimum": 0},
                    "assigned_partitions": {"type": "integer", "minimum": 0},
                    "kafka": {"type": "boolean"},
                    "redis": {"type": "boolean"},
                    "consumer": {
                        "type": "object",
                        "description": "The page-view consumer (kafka engine): stalled = "
                        "behind the log and receiving nothing for STREAMREC_STALL_TIMEOUT_S "
                        "(it is then replaced with a longer fetch wait).",
                        "properties": {
                            "stalled": {"type": "boolean"},
                            "stalls": {"type": "integer", "minimum": 0},
                            "behind": {"type": "integer", "minimum": 0},
                            "idle_s": {"type": "number", "minimum": 0},
                            "fetch_wait_ms": {"type": "integer", "minimum": 0},
                            "replacements": {"type": "integer", "minimum": 0},
                        },
                    },
                },
            },
            "ModelVersion": {
                "type": "object",
                "required": ["version", "origin", "current", "pinned", "verified"],
                "properties": {
                    "version": {"type": "integer", "minimum": 1},
                    "origin": {"type": "string"},
                    "namespace": {
                        "type": "string",
                        "description": "Whose version this is: the model name's own "
                        "namespace, or the one promoted into it.",
                    },
                    "current": {"type": "boolean", "description": "Current in its namespace."},
                    "is_served": {
                        "type": "boolean",
                        "description": "The version scorers of the model name serve.",
                    },
                    "pinned": {"type": "boolean"},
                    "verified": {"type": "boolean"},
                    "error": {"type": "string"},
                    "delta_of": {"type": "integer", "nullable": True},
                    "created_at": {"type": "number"},
                    "created": {"type": "string"},
                    "events": {"type": "integer", "minimum": 0},
                    "range": {"type": "string"},
                    "model_class": {"type": "string"},
                    "content_hash": {"type": "string"},
                    "experiments": {
                        "type": "array",
                        "description": "Finished experiments this version served in (as "
                        "the champion or the challenger, at the moment of the decision): "
                        "`experiment` id, `arm`, `action` (promote or stop), `by`, `reason`, "
                        "`at`, both arms' `namespace` and `version`, and `figures`: per arm "
                        "`judged`, hit@k and MRR@k, and `difference_hit@k` / "
                        "`difference_mrr@k` (challenger minus champion) with `ci95` and "
                        "`always_valid` intervals. Kept beside the signed snapshot.",
                        "items": {
                            "type": "object",
                            "required": ["experiment", "arm", "action", "figures"],
                            "properties": {
                                "experiment": {"type": "string"},
                                "arm": {"type": "string", "enum": ["champion", "challenger"]},
                                "action": {"type": "string", "enum": ["promote", "stop"]},
                                "by": {"type": "string"},
                                "reason": {"type": "string"},
                                "at": {"type": "number"},
                                "figures": {"type": "object"},
                            },
                        },
                    },
                    "served": {
                        "type": "object",
                        "nullable": True,
                        "description": "Only in /console/state: judged views, hit@k and "
                        "MRR@k this scorer measured while serving the version (null: never).",
                    },
                },
                "additionalProperties": {
                    "description": "hit@k and mrr@k of the version's own evaluation "
                    "(k = STREAMREC_K)",
                    "type": "number",
                    "nullable": True,
                },
            },
            "ConsoleState": {
                "type": "object",
                "required": [
                    "time",
                    "k",
                    "health",
                    "counters",
                    "served",
                    "served_by_version",
                    "versions",
                    "experiment",
                ],
                "properties": {
                    "time": {"type": "number"},
                    "k": {"type": "integer", "minimum": 1},
                    "started_at": {"type": "number"},
                    "health": _ref("Readiness"),
                    "counters": {
                        "type": "object",
                        "description": "Totals since this scorer started.",
                        "required": ["events_in", "events_out", "dead_letters"],
                        "properties": {
                            "events_in": {"type": "integer", "minimum": 0},
                            "events_out": {"type": "integer", "minimum": 0},
                            "dead_letters": {
                                "type": "object",
                                "description": "Dead letters by reason.",
                                "additionalProperties": {"type": "integer", "minimum": 0},
                            },
                            "send_retries": {"type": "integer", "minimum": 0},
                            "redis_errors": {"type": "integer", "minimum": 0},
                        },
                    },
                    "served": {
                        "type": "object",
                        "description": "The served model, its freshness and rolling served "
                        "hit@k / MRR@k (k = STREAMREC_K).",
                        "required": ["version", "snapshots_rejected", "judged"],
                        "properties": {
                            "model_name": {"type": "string"},
                            "version": {"type": "integer", "minimum": 0},
                            "model_class": {"type": "string"},
                            "created_at": {"type": "number", "nullable": True},
                            "age_s": {"type": "number", "nullable": True},
                            "swaps": {"type": "integer", "minimum": 0},
                            "snapshots_rejected": {"type": "integer", "minimum": 0},
                            "last_error": {"type": "string", "nullable": True},
                            "judged": {"type": "integer", "minimum": 0},
                        },
                        "additionalProperties": {"type": "number", "nullable": True},
                    },
                    "served_by_version": {
                        "type": "array",
                        "description": "Served quality since start per version that served.",
                        "items": {
                            "type": "object",
                            "required": ["version", "judged"],
                            "properties": {
                                "version": {"type": "integer", "minimum": 0},
                                "judged": {"type": "integer", "minimum": 0},
                            },
                            "additionalProperties": {"type": "number"},
                        },
                    },
                    "versions": {
                        "type": "array",
                        "description": "The rows of GET /models (with their `experiments` "
                        "outcomes), each with `served` (what this scorer measured while "
                        "serving it, or null).",
                        "items": _ref("ModelVersion"),
                    },
                    "versions_error": {"type": "string", "nullable": True},
                    "serving": {
                        "allOf": [_ref("ServedModel")],
                        "nullable": True,
                        "description": "What scorers of the model name serve, as Redis "
                        "says (null while Redis is away); `served` is what this scorer holds.",
                    },
                    "experiment": {
                        "type": "object",
                        "nullable": True,
                        "description": "The running experiment and its per-arm figures.",
                    },
                    "consumer_lag": _ref("ConsumerLag"),
                    "history_interval_s": {
                        "type": "number",
                        "description": "Seconds between two samples of `history`.",
                    },
                    "history": {
                        "type": "array",
                        "description": "What the charts draw, sampled by this scorer every "
                        "`history_interval_s` for the last hour (since it started), oldest "
                        "first; with `since`, only the samples taken after it.",
                        "items": _ref("ConsoleSample"),
                    },
                },
            },
            "ConsoleSample": {
                "type": "object",
                "required": [
                    "t",
                    "events_in",
                    "events_out",
                    "dead_letters",
                    "version",
                    "judged",
                    "age_s",
                    "lag",
                ],
                "properties": {
                    "t": {"type": "number", "description": "When (seconds since the epoch)."},
                    "events_in": {"type": "integer", "minimum": 0},
                    "events_out": {"type": "integer", "minimum": 0},
                    "dead_letters": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                    "version": {"type": "integer", "minimum": 0},
                    "judged": {"type": "integer", "minimum": 0},
                    "age_s": {"type": "number", "nullable": True},
                    "lag": {
                        "type": "object",
                        "nullable": True,
                        "description": "Consumer lag per role, summed over partitions "
                        "(null: no fresh read).",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                },
                "additionalProperties": {
                    "description": "Served hit@k and mrr@k (k = STREAMREC_K), rolling.",
                    "type": "number",
                    "nullable": True,
                },
            },
            "ConsumerLag": {
                "type": "object",
                "nullable": True,
                "description": "Per partition of the page-view topic: how many records the "
                "scorers' and the trainer's consumer groups (and a running experiment's "
                "challenger trainer) have not committed yet, as of `measured_at` (read at "
                "most every 2 s). `error`: why the last read failed (the rows are the "
                "previous read's).",
                "required": ["measured_at", "error", "totals", "partitions"],
                "properties": {
                    "measured_at": {"type": "number", "nullable": True},
                    "error": {"type": "string", "nullable": True},
                    "totals": {
                        "type": "object",
                        "description": "Lag summed over partitions, per role.",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                    "partitions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": [
                                "role",
                                "group",
                                "topic",
                                "partition",
                                "committed",
                                "high",
                                "lag",
                            ],
                            "properties": {
                                "role": {
                                    "type": "string",
                                    "enum": ["scorer", "trainer", "challenger trainer"],
                                },
                                "group": {"type": "string"},
                                "topic": {"type": "string"},
                                "partition": {"type": "integer", "minimum": 0},
                                "committed": {
                                    "type": "integer",
                                    "minimum": 0,
                                    "nullable": True,
                                    "description": "Next offset the group reads (null: "
                                    "it never committed on this partition).",
                                },
                                "high": {"type": "integer", "minimum": 0},
                                "lag": {"type": "integer", "minimum": 0},
                            },
                        },
                    },
                },
            },
            "ModelAction": {
                "type": "object",
                "required": ["model", "namespace", "current", "pinned"],
                "properties": {
                    "model": {"type": "string"},
                    "namespace": {"type": "string", "description": "The namespace served now."},
                    "current": {"type": "integer", "minimum": 1, "nullable": True},
                    "pinned": {"type": "boolean"},
                    "previous": {"type": "integer", "minimum": 1, "nullable": True},
                    "previous_namespace": {"type": "string"},
                },
            },
            "ServedModel": {
                "type": "object",
                "required": ["model_name", "namespace", "version", "pinned", "reason"],
                "properties": {
                    "model_name": {"type": "string"},
                    "namespace": {"type": "string"},
                    "version": {"type": "integer", "minimum": 1, "nullable": True},
                    "pinned": {"type": "boolean"},
                    "promoted": {"type": "boolean"},
                    "reason": {"type": "string"},
                    "last_change": {"type": "object", "nullable": True},
                },
            },
        },
    },
    "paths": {
        "/recommendations/{user_id}": {
            "get": {
                **_READ,
                "summary": "The top k pages for a user, from the served model and the "
                "user's Redis history (pages already viewed are left out).",
                "parameters": [
                    {
                        "name": "user_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    },
                    {
                        "name": "k",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K},
                    },
                    {
                        "name": "category",
                        "in": "query",
                        "required": False,
                        "description": "Only pages of any of these catalog categories.",
                        "schema": _rule_values(MAX_CATEGORIES),
                        "style": "form",
                        "explode": True,
                    },
                    {
                        "name": "exclude",
                        "in": "query",
                        "required": False,
                        "description": "Page ids never to recommend in this answer.",
                        "schema": _rule_values(MAX_EXCLUDE),
                        "style": "form",
                        "explode": True,
                    },
                ],
                "responses": {
                    "200": _json("The list, best first.", _ref("Recommendations")),
                    "400": {
                        "description": f"k is not a whole number from 1 to {MAX_K}, or a"
                        " category or exclude value is malformed (JSON); or the request line"
                        " is longer than the HTTP server's 8190 bytes (plain text, before the"
                        " view runs; batch-score takes longer exclude lists).",
                        "content": {
                            "application/json": {"schema": _ref("Error")},
                            "text/plain": {"schema": {"type": "string"}},
                        },
                    },
                    "503": {
                        "description": "Overloaded: STREAMREC_REST_MAX_IN_FLIGHT requests of"
                        " this endpoint were in progress; answered at once, before any work"
                        " (streamrec_rest_refused_total counts them). Ask again after"
                        " `Retry-After` seconds, or ask another scorer.",
                        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                    **_REFUSED,
                },
            }
        },
        "/readyz": {"get": {**_OPEN, "summary": "Readiness probe.", "responses": _PROBE}},
        "/healthz": {"get": {**_OPEN, "summary": "The same as /readyz.", "responses": _PROBE}},
        "/livez": {
            "get": {
                **_OPEN,
                "summary": "Liveness probe: 200 while the process and its event loop run.",
                "responses": {
                    "200": _json(
                        "Alive.",
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"type": "string", "enum": ["alive"]}},
                        },
                    )
                },
            }
        },
        "/metrics": {
            "get": {
                **_READ,
                "summary": "Prometheus text exposition.",
                "responses": {
                    "200": {
                        "description": "Counters, gauges and histograms of this scorer.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_REFUSED,
                },
            }
        },
        "/openapi.json": {
            "get": {
                **_READ,
                "summary": "This description.",
                "responses": {"200": _json("OpenAPI 3 document.", {"type": "object"}), **_REFUSED},
            }
        },
        "/": {
            "get": {
                **_READ,
                "summary": "Faust's worker index (kept by Faust; says the worker is up).",
                "responses": {
                    "200": _json(
                        "OK.",
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"type": "string"}},
                        },
                    ),
                    **_REFUSED,
                },
            }
        },
        "/models": {
            "get": {
                **_READ,
                "summary": "Kept versions of the served model, newest first (as `streamrec "
                "models list --json`).",
                "responses": {
                    "200": _json(
                        "One object per version; those that do not verify have "
                        "`verified: false` and an `error`.",
                        {"type": "array", "items": _ref("ModelVersion")},
                    ),
                    "503": _REDIS_AWAY,
                    **_REFUSED,
                },
            }
        },
        "/models/served": {
            "get": {
                **_READ,
                "summary": "What scorers of this model name serve now, and why (as the first "
                "line of `streamrec models list`).",
                "responses": {
                    "200": _json("The served namespace and version.", _ref("ServedModel")),
                    "503": _REDIS_AWAY,
                    **_REFUSED,
                },
            }
        },
        "/console": {
            "get": {
                **_OPEN,
                "summary": "The operations console page (static HTML; it asks for a token and "
                "reads `/console/state` with it, so the page itself holds no data).",
                "responses": {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/console/assets/{name}": {
            "get": {
                **_OPEN,
                "summary": "The console's script and style sheet (shipped in the package).",
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                        "description": "`console.js` or `console.css`.",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            "text/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                        },
                    },
                    "404": _json("No such asset.", _ref("Error")),
                },
            }
        },
        "/console/state": {
            "get": {
                **_READ,
                "summary": "What the console shows: counters, served model and quality, "
                "readiness, kept versions with their served quality, the running experiment, "
                "consumer lag per partition, and the samples the charts draw.",
                "parameters": [
                    {
                        "name": "since",
                        "in": "query",
                        "required": False,
                        "description": "Only the `history` samples taken after this time "
                        "(seconds since the epoch; the page passes its newest sample's `t`).",
                        "schema": {"type": "number"},
                    }
                ],
                "responses": {
                    "200": _json("This scorer's state, as of now.", _ref("ConsoleState")),
                    "400": _json("`since` is not a finite number.", _ref("Error")),
                    **_REFUSED,
                },
            }
        },
        "/models/promote": {
            "post": _action(
                "Serve a version and pin it (as `streamrec models promote`).",
                "The trainer's publishes no longer move current until follow. Refused "
                "unless the version verifies and loads.",
                {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["version"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "version": {"type": "integer", "minimum": 1},
                                        "namespace": {
                                            "type": "string",
                                            "minLength": 1,
                                            "description": "Whose version (default: the "
                                            "namespace served); another one moves serving "
                                            "there.",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _MOVED,
                        "400": _json(
                            'The body is not {"version": <n >= 1>[, "namespace": ...]}.',
                            _ref("Error"),
                        ),
                        "404": _json("No such version is kept.", _ref("Error")),
                        "409": _NOT_NOW,
                        "503": _REDIS_AWAY,
                        **_ADMIN_REFUSED,
                    },
                },
            )
        },
        "/models/rollback": {
            "post": _action(
                "Undo the newest promotion from another namespace, else serve the newest "
                "verifiable version older than the served one; pinned (as `streamrec models "
                "rollback`).",
                "`previous` is the version served before.",
                {
                    "responses": {
                        "200": _MOVED,
                        "409": _NOT_NOW,
                        "503": _REDIS_AWAY,
                        **_ADMIN_REFUSED,
                    }
                },
            )
        },
        "/models/follow": {
            "post": _action(
                "Unpin: serve the newest trainer version and each new one (as "
                "`streamrec models follow`).",
                "`current` is null when the trainer has published nothing yet.",
                {"responses": {"200": _MOVED, "503": _REDIS_AWAY, **_ADMIN_REFUSED}},
            )
        },
    },
}


def document() -> dict[str, Any]:
    """A copy of :data:`DOCUMENT` (callers may change theirs)."""
    return copy.deepcopy(DOCUMENT)


def roles() -> dict[tuple[str, str], Role]:
    """(path pattern, METHOD) -> the role it needs, as the document says."""
    return {
        (path, method.upper()): Role[operation["x-streamrec-role"].upper()]
        for path, operations in DOCUMENT["paths"].items()
        for method, operation in operations.items()
    }
