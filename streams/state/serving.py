"""What the scorers of one model name serve now, and every change of it.

Scorers started with ``STREAMREC_MODEL_NAME=N`` serve the snapshots of one namespace:
N's own, or the namespace N's ``serving`` pointer names once a challenger (or another
namespace's version) was promoted. Within that namespace they serve ``current``.

:meth:`Serving.read` answers "what do scorers of N serve, and why" for every command and
view (``streamrec models``, ``batch-score``, ``/readyz``, ``/models``, the console, the
lag view). Every operator change goes through :meth:`Serving.switch`: one Lua script
moves the pointer, ``current`` and the pin together, records the change in N's
``serving-log`` (newest first) and publishes the hint scorers swap on, and it refuses
when what is served moved since the caller read it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from online_model.errors import ConfigurationError, SnapshotError
from streams.state.connection import is_cluster, redis_errors
from streams.state.keys import ModelKeys, family

#: Changes kept in the serving log.
LOG_LENGTH = 100

# KEYS: pointer, target snapshot, target current, target pinned, log, left pinned
# ARGV: expected pointer ('' = absent), new pointer ('' = delete), version ('' = keep
#       current as it is), pin ('1' / '0'), entry (JSON), log length, model channel,
#       target channel, pin what is left ('1' / '0')
_SWITCH = """
local pointer = redis.call('GET', KEYS[1]) or ''
if pointer ~= ARGV[1] then return 'moved' end
if ARGV[3] ~= '' then
  if redis.call('EXISTS', KEYS[2]) == 0 then return 'gone' end
  redis.call('SET', KEYS[3], ARGV[3])
end
if ARGV[4] == '1' then redis.call('SET', KEYS[4], '1') else redis.call('DEL', KEYS[4]) end
if ARGV[9] == '1' then redis.call('SET', KEYS[6], '1') end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
redis.call('LPUSH', KEYS[5], ARGV[5])
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[6]) - 1)
redis.call('PUBLISH', ARGV[7], ARGV[3])
if ARGV[8] ~= ARGV[7] then redis.call('PUBLISH', ARGV[8], ARGV[3]) end
return 'ok'
"""


class ServingMoved(SnapshotError):
    """What is served changed between reading it and changing it; nothing was changed."""


@dataclass(frozen=True)
class Placement:
    """One namespace's served version: what a change leaves or restores."""

    namespace: str
    version: int | None
    pinned: bool

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "version": self.version, "pinned": self.pinned}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Placement:
        version = data.get("version")
        return cls(
            str(data["namespace"]),
            None if version is None else int(version),
            bool(data.get("pinned")),
        )


@dataclass(frozen=True)
class ServedModel:
    """What scorers of ``model_name`` serve: ``version`` of ``namespace``.

    ``last_change`` is the newest entry of the serving log (None before any), kept when
    it still describes what is served, so :attr:`reason` can say why.
    """

    model_name: str
    namespace: str
    version: int | None
    pinned: bool
    last_change: dict[str, Any] | None = None

    @property
    def placement(self) -> Placement:
        return Placement(self.namespace, self.version, self.pinned)

    @property
    def promoted(self) -> bool:
        """Whether another namespace than the model name's own is served."""
        return self.namespace != self.model_name

    @property
    def reason(self) -> str:
        """Why this is served, in a few words for an operator."""
        change = self.last_change
        if (
            change is not None
            and change.get("namespace") == self.namespace
            and (change.get("version") == self.version or not self.pinned)
        ):
            return describe(change)
        if self.pinned:
            return "pinned by an operator"
        if self.version is None:
            return "no snapshot yet (cold-start popularity)"
        return "following its trainer"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "namespace": self.namespace,
            "version": self.version,
            "pinned": self.pinned,
            "promoted": self.promoted,
            "reason": self.reason,
            "last_change": self.last_change,
        }


def describe(change: dict[str, Any]) -> str:
    """One change of the serving log as a phrase: ``rolled back by cli at 2026-...``.

    >>> describe({"action": "promote", "by": "cli", "at": 0})
    'promoted by cli at 1970-01-01T00:00:00Z'
    """
    verb = {
        "promote": "promoted",
        "experiment": "promoted by experiment",
        "rollback": "rolled back",
        "follow": "following its trainer since",
    }.get(str(change.get("action")), str(change.get("action")))
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(change.get("at") or 0)))
    if change.get("action") == "experiment":
        return f"{verb} {change.get('experiment')} at {when}"
    if change.get("action") == "follow":
        return f"{verb} {when} ({change.get('by')})"
    return f"{verb} by {change.get('by')} at {when}"


def served_line(served: ServedModel) -> str:
    """What scorers of the model name serve, and why, in one line.

    >>> served_line(ServedModel("default", "default.xab", 65, False))
    'model default serves default.xab version 65 (following its trainer)'
    """
    version = "no snapshot yet" if served.version is None else f"version {served.version}"
    return f"model {served.model_name} serves {served.namespace} {version} ({served.reason})"


def change_entry(
    action: str, by: str, to: Placement, before: Placement, **extra: Any
) -> dict[str, Any]:
    """A serving-log entry: what is served after the change and what was before."""
    return {
        "action": action,
        "by": by,
        "at": time.time(),
        **to.to_dict(),
        "before": before.to_dict(),
        **extra,
    }


def queue_change(pipe: Any, keys: ModelKeys, entry: dict[str, Any]) -> None:
    """Queue ``entry`` at the head of the serving log of ``keys``' model name on a MULTI
    ``pipe``: for a change made inside another transaction (an experiment's promotion),
    as :meth:`Serving.switch` logs its own."""
    log = keys.serving_log
    pipe.lpush(log, json.dumps(entry, sort_keys=True))
    pipe.ltrim(log, 0, LOG_LENGTH - 1)


def cross_family(model_name: str, namespace: str) -> str:
    """Why a model name cannot serve ``namespace`` on a Redis Cluster, in one line.

    >>> cross_family("default", "other").endswith("(default and default.*), whose keys "
    ...     "share one hash slot; other is not one")
    True
    """
    base = family(model_name)
    return (
        f"on a Redis Cluster, model {model_name} serves only namespaces of its family "
        f"({base} and {base}.*), whose keys share one hash slot; {namespace} is not one"
    )


def _int(raw: bytes | None) -> int | None:
    return int(raw) if raw is not None else None


class Serving:
    """The served namespace and version of one model name, and the log of changes."""

    def __init__(self, client: Any, model_name: str) -> None:
        self.redis = client
        self.model_name = model_name
        self.keys = ModelKeys(model_name, is_cluster(client))
        self._switch = client.register_script(_SWITCH)

    @redis_errors
    def read(self) -> ServedModel:
        """What scorers of the model name serve now (two round trips)."""
        pointer, newest = (
            self.redis.pipeline(transaction=False)
            .get(self.keys.serving)
            .lindex(self.keys.serving_log, 0)
            .execute()
        )
        namespace = pointer.decode() if pointer else self.model_name
        served = self.keys.of(namespace)
        current, pinned = self.redis.mget(served.served_group())
        return ServedModel(
            self.model_name,
            namespace,
            _int(current),
            pinned is not None,
            json.loads(newest) if newest else None,
        )

    @redis_errors
    def changes(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest ``limit`` changes of what is served, newest first."""
        return [json.loads(raw) for raw in self.redis.lrange(self.keys.serving_log, 0, limit - 1)]

    @redis_errors
    def switch(
        self, before: ServedModel, to: Placement, entry: dict[str, Any], pin_left: bool = False
    ) -> None:
        """Serve ``to`` (pointer, ``current`` and pin at once) and log ``entry``.

        Refused (:class:`ServingMoved`) when the pointer no longer names the namespace
        ``before`` says (another operator or a gate changed it meanwhile); refused
        (SnapshotError) when the version to serve no longer exists. ``pin_left`` pins
        the namespace left behind at its ``current``, so that what it served stays kept
        and can be restored.
        """
        if not self.keys.same_slot(to.namespace):
            raise ConfigurationError(cross_family(self.model_name, to.namespace))
        target = self.keys.of(to.namespace)
        version = to.version if to.version is not None else 0
        result = self._switch(
            keys=self.keys.switch_group(to.namespace, version, before.namespace),
            args=[
                "" if before.namespace == self.model_name else before.namespace,
                "" if to.namespace == self.model_name else to.namespace,
                "" if to.version is None else to.version,
                "1" if to.pinned else "0",
                json.dumps(entry, sort_keys=True),
                LOG_LENGTH,
                self.keys.published_channel,
                target.published_channel,
                "1" if pin_left and before.namespace != to.namespace else "0",
            ],
        )
        result = result.decode() if isinstance(result, bytes) else str(result)
        if result == "moved":
            raise ServingMoved(
                f"the namespace {self.model_name} serves changed meanwhile (a promotion "
                "or another operator); look again (streamrec models list) and retry"
            )
        if result == "gone":
            raise SnapshotError(f"snapshot {to.namespace} version {to.version} disappeared")
