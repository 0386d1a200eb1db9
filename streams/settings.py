"""One settings object, read once from the environment.

Every other module asks :class:`Settings` for its client configuration, so the
librdkafka, aiokafka (Faust) and Redis dicts are built in one place. With neither
``KAFKA_BOOTSTRAP_SERVERS`` nor ``REDIS_URL`` set, streamrec runs against the embedded
broker and Redis-compatible server on loopback (see :mod:`streams.services.embedded`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from online_model.catalog import UNKNOWN_POLICIES
from online_model.errors import ConfigurationError
from streams.api_tokens import parse_api_tokens
from streams.durations import parse_duration

if TYPE_CHECKING:
    import redis as redis_sync
    import redis.asyncio as redis_async


class Secret:
    """A string that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


#: The longest list anything serves (topic, REST, batch); ``STREAMREC_K`` must not exceed it.
MAX_K = 100
#: What can drive a scorer (``STREAMREC_SCORER_ENGINE``): streams/scorer/kafka_engine.py
#: and the Faust app in streams/scorer/app.py.
SCORER_ENGINES = ("kafka", "faust")
#: Defaults by broker when ``STREAMREC_LINGER_MS`` / ``STREAMREC_FETCH_MAX_WAIT_MS`` are
#: not set. The embedded broker lists every record batch of a partition on each fetch that
#: finds data, and holds each fetch for about its wait (README, "The embedded broker"):
#: its cost grows with (fetches per second) x (batches held), so there producers batch
#: longer and consumers fetch less often, which is what keeps it serving for hours at
#: hundreds of views/s. Apache Kafka answers a fetch as soon as data arrives (the wait
#: costs no latency there) and finds offsets in an index.
EMBEDDED_LINGER_MS = 100
KAFKA_LINGER_MS = 5
EMBEDDED_FETCH_WAIT_MS = 250
KAFKA_FETCH_WAIT_MS = 100
#: Fewest bytes of snapshot key material (HMAC-SHA256 wants a key as long as its output).
MIN_SNAPSHOT_KEY_BYTES = 32


def parse_count(text: str) -> int:
    """A whole number written with ASCII digits only.

    ``int()`` also takes ``"5_0"``, ``" 5"`` and non-ASCII (e.g. fullwidth) digits; a
    setting or a query parameter that looks like one number but reads as another is a
    mistake to report, not to guess at.

    >>> parse_count("50")
    50
    >>> parse_count("5_0")
    Traceback (most recent call last):
    ...
    ValueError: not a whole number: '5_0'
    """
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _env_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


class _OncePerMinute(logging.Filter):
    """Let a librdkafka message through once per minute per kind.

    While a broker is away librdkafka logs every reconnect attempt (hundreds of
    ``Connection refused`` lines a minute); one line per minute says the same.
    """

    def __init__(self, period_s: float = 60.0) -> None:
        super().__init__()
        self.period_s = period_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = re.sub(r"\d+", "#", str(record.args))  # same message, other counters/ports
        now = time.monotonic()
        if now - self._last.get(kind, -self.period_s) < self.period_s:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[kind] = now
        return True


log = logging.getLogger(__name__)

#: Where librdkafka's own log lines go (through Python logging, so --log-level applies).
librdkafka_log = logging.getLogger("streams.librdkafka")
librdkafka_log.addFilter(_OncePerMinute())


def _env(
    var: str,
    default: Any = MISSING,
    factory: Any = MISSING,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """A settings field read from environment variable ``var`` (parsed by its type, or by
    ``parse``)."""
    metadata = {"env": var} if parse is None else {"env": var, "parse": parse}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


#: How a variable's text becomes a field's value, by the field's annotation.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "str | None": str,
    "int": parse_count,
    "int | None": parse_count,
    "float": float,
    "bool": _env_bool,
    "Path": Path,
    "Secret": Secret,
}


def _option(
    var: str,
    parse: Callable[[str], Any],
    role: str,
    renamed_from: str | None = None,
) -> Any:
    """The environment fallback of a command-line option (role: the command), read like
    every setting; ``renamed_from`` is the variable's former name, still read (with a
    warning) when ``var`` is not set. Unset: None, and the option's default applies."""
    metadata = {"env": var, "parse": parse, "role": role}
    if renamed_from is not None:
        metadata["renamed_from"] = renamed_from
    return field(default=None, metadata=metadata)


def _words(value: str) -> tuple[str, ...]:
    """A repeatable option's variable: its values separated by spaces."""
    return tuple(value.split())


DEFAULT_MODEL_NAME = "default"
SCORER_GROUP = "streamrec-scorer"
TRAINER_GROUP = "streamrec-trainer"


def _group_of(base: str, model_name: str) -> str:
    """The default consumer group of ``model_name``: ``base`` for the default model,
    ``base.<model name>`` for any other."""
    return base if model_name == DEFAULT_MODEL_NAME else f"{base}.{model_name}"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with defaults that work on a laptop.

    Build it with :meth:`from_env`; tests build it directly with keyword arguments.
    """

    kafka_bootstrap_servers: str | None = _env("KAFKA_BOOTSTRAP_SERVERS", None)
    redis_url: str | None = _env("REDIS_URL", None)
    #: REDIS_URL names a node of a Redis Cluster, or several (``host:port,host:port``; the
    #: others are found from them): keys take the cluster layout, hash-tagged per model
    #: family (docs/redis-cluster.md).
    redis_cluster: bool = _env("STREAMREC_REDIS_CLUSTER", False)
    schema_registry_url: str | None = _env("SCHEMA_REGISTRY_URL", None)
    kafka_port: int = _env("STREAMREC_KAFKA_PORT", 19092)
    redis_port: int = _env("STREAMREC_REDIS_PORT", 16379)
    # _env returns a dataclasses.field, as field() itself would (ruff cannot tell).
    state_dir: Path = _env("STREAMREC_STATE_DIR", factory=lambda: Path.home() / ".streamrec")  # noqa: RUF009
    topic_page_views: str = _env("STREAMREC_TOPIC_PAGE_VIEWS", "page-views")
    topic_recommendations: str = _env("STREAMREC_TOPIC_RECOMMENDATIONS", "recommendations")
    topic_dlq: str = _env("STREAMREC_TOPIC_DLQ", "page-views.dlq")
    #: The compacted catalog topic (Avro ``Page`` keyed by page_id).
    topic_pages: str = _env("STREAMREC_TOPIC_PAGES", "pages")
    partitions: int = _env("STREAMREC_PARTITIONS", 3)
    replication_factor: int = _env("STREAMREC_REPLICATION_FACTOR", 1)
    #: The Redis namespace of one model's snapshots, lease and histories.
    model_name: str = _env("STREAMREC_MODEL_NAME", DEFAULT_MODEL_NAME)
    #: What the trainer builds: a built-in model name or ``package.module:Class``.
    model_spec: str = _env("STREAMREC_MODEL", "default")
    snapshot_key: Secret = _env("STREAMREC_SNAPSHOT_KEY", factory=lambda: Secret(""))  # noqa: RUF009
    insecure_dev: bool = _env("STREAMREC_INSECURE_DEV", False)
    allow_pickle: bool = _env("STREAMREC_ALLOW_PICKLE", False)
    #: Durations whose name has no unit are typed with one (``500ms``, ``2s``).
    snapshot_interval: float = _env("STREAMREC_SNAPSHOT_INTERVAL", 0.5, parse=parse_duration)
    snapshot_keep: int = _env("STREAMREC_SNAPSHOT_KEEP", 20)
    #: Delta snapshots the trainer publishes between two full ones (0: only full ones).
    snapshot_full_every: int = _env("STREAMREC_SNAPSHOT_FULL_EVERY", 20)
    model_poll_interval: float = _env("STREAMREC_MODEL_POLL_INTERVAL", 0.5, parse=parse_duration)
    k: int = _env("STREAMREC_K", 10)
    history_length: int = _env("STREAMREC_HISTORY_LENGTH", 50)
    history_ttl_s: int = _env("STREAMREC_HISTORY_TTL_S", 30 * 24 * 3600)
    max_event_bytes: int = _env("STREAMREC_MAX_EVENT_BYTES", 64 * 1024)
    session_timeout_ms: int = _env("STREAMREC_SESSION_TIMEOUT_MS", 6000)
    #: Consumer groups ("": derived from the model name, see :meth:`__post_init__`).
    scorer_group: str = _env("STREAMREC_SCORER_GROUP", "")
    trainer_group: str = _env("STREAMREC_TRAINER_GROUP", "")
    web_port: int = _env("STREAMREC_WEB_PORT", 6066)
    #: Address the scorer's REST API listens on: loopback unless told (compose: 0.0.0.0).
    web_bind: str = _env("STREAMREC_WEB_BIND", "127.0.0.1")
    #: ``name:role:token,...`` (role ``read`` or ``admin``); when set, the REST API wants
    #: ``Authorization: Bearer <token>`` (streams/scorer/auth.py).
    api_tokens: Secret = _env("STREAMREC_API_TOKENS", factory=lambda: Secret(""))  # noqa: RUF009
    #: ``GET /recommendations`` requests a scorer works on at once, at most: past it the
    #: scorer answers 503 with ``Retry-After`` at once (streams/scorer/overload.py; 0: no bound).
    rest_max_in_flight: int = _env("STREAMREC_REST_MAX_IN_FLIGHT", 32)
    #: What drives a scorer: ``kafka`` (a confluent-kafka consumer loop) or ``faust``.
    scorer_engine: str = _env("STREAMREC_SCORER_ENGINE", "kafka")
    batch_size: int = _env("STREAMREC_BATCH_SIZE", 500)
    batch_wait_s: float = _env("STREAMREC_BATCH_WAIT_S", 0.005)
    #: librdkafka ``fetch.wait.max.ms`` of every consumer (None: by broker, see
    #: :attr:`fetch_wait_ms`).
    fetch_max_wait_ms: int | None = _env("STREAMREC_FETCH_MAX_WAIT_MS", None)
    #: ``linger.ms`` of streamrec's producers (None: by broker, see
    #: :attr:`producer_linger_ms`).
    linger_ms: int | None = _env("STREAMREC_LINGER_MS", None)
    #: Seconds a consumer may receive nothing while behind the log before it is called
    #: stalled and replaced (streams/io/stall_watch.py).
    stall_timeout_s: float = _env("STREAMREC_STALL_TIMEOUT_S", 30.0)
    #: A trainer on the embedded broker warns when the broker's resident memory passes
    #: this many MB, and at each doubling (0: never); streams/services/embedded_broker_watch.py.
    broker_memory_warn_mb: int = _env("STREAMREC_BROKER_MEMORY_WARN_MB", 2048)
    #: Batches a kafka-engine scorer has scored and sent whose acknowledgement it awaits,
    #: at most (1: it takes the next batch only once the last one is acknowledged).
    batches_in_flight: int = _env("STREAMREC_BATCHES_IN_FLIGHT", 4)
    #: What scorers do with a page the catalog has no record of: ``allow`` or ``deny``.
    catalog_unknown: str = _env("STREAMREC_CATALOG_UNKNOWN", "allow")
    fresh_slots: int = _env("STREAMREC_FRESH_SLOTS", 1)
    fresh_window_s: float = _env("STREAMREC_FRESH_WINDOW_S", 86_400.0)
    fresh_max_views: int = _env("STREAMREC_FRESH_MAX_VIEWS", 5)

    # -- the command line's options -----------------------------------------------------
    # Each option's environment fallback, declared and read here like every setting
    # (:func:`env_value`); the option itself gives the default and checks the value.
    # None: not set.
    # every command
    log_level: str | None = _option("STREAMREC_LOG_LEVEL", str, role="streamrec")
    progress_interval: float | None = _option(
        "STREAMREC_PROGRESS_INTERVAL", parse_duration, role="streamrec"
    )
    # streamrec up
    up_timeout: float | None = _option("STREAMREC_UP_TIMEOUT", parse_duration, role="up")
    # streamrec status
    status_json: bool | None = _option("STREAMREC_STATUS_JSON", _env_bool, role="status")
    # streamrec produce (and retrain --input)
    produce_input: str | None = _option("STREAMREC_PRODUCE_INPUT", str, role="produce")
    produce_rate: float | None = _option("STREAMREC_PRODUCE_RATE", float, role="produce")
    skip_bad: bool | None = _option("STREAMREC_SKIP_BAD", _env_bool, role="produce")
    # streamrec generate
    generate_users: int | None = _option(
        "STREAMREC_GENERATE_USERS", parse_count, renamed_from="STREAMREC_USERS", role="generate"
    )
    generate_pages: int | None = _option(
        "STREAMREC_GENERATE_PAGES", parse_count, renamed_from="STREAMREC_PAGES", role="generate"
    )
    generate_events: int | None = _option(
        "STREAMREC_GENERATE_EVENTS", parse_count, renamed_from="STREAMREC_EVENTS", role="generate"
    )
    generate_seed: int | None = _option(
        "STREAMREC_GENERATE_SEED", parse_count, renamed_from="STREAMREC_SEED", role="generate"
    )
    generate_output: str | None = _option(
        "STREAMREC_GENERATE_OUTPUT", str, renamed_from="STREAMREC_OUTPUT", role="generate"
    )
    generate_new_pages: float | None = _option(
        "STREAMREC_GENERATE_NEW_PAGES", float, role="generate"
    )
    generate_catalog: str | None = _option("STREAMREC_GENERATE_CATALOG", str, role="generate")
    # streamrec evaluate (model parameters: also trainer, replay, retrain)
    evaluate_input: str | None = _option(
        "STREAMREC_EVALUATE_INPUT", str, renamed_from="STREAMREC_INPUT", role="evaluate"
    )
    model_params: tuple[str, ...] | None = _option(
        "STREAMREC_MODEL_PARAMS", _words, renamed_from="STREAMREC_PARAM", role="evaluate"
    )
    evaluate_skip_bad: bool | None = _option(
        "STREAMREC_EVALUATE_SKIP_BAD", _env_bool, renamed_from="STREAMREC_SKIP_BAD", role="evaluate"
    )
    evaluate_retrain_every: int | None = _option(
        "STREAMREC_EVALUATE_RETRAIN_EVERY", parse_count, role="evaluate"
    )
    # streamrec trainer
    trainer_lease_ttl: float | None = _option(
        "STREAMREC_TRAINER_LEASE_TTL", parse_duration, role="trainer"
    )
    trainer_challenger: bool | None = _option(
        "STREAMREC_TRAINER_CHALLENGER", _env_bool, role="trainer"
    )
    #: ``i/N``: this process is trainer shard i of N, learning the partitions p % N == i
    #: (unset: one trainer learns every partition, as always; docs/operations.md).
    trainer_shard: str | None = _option("STREAMREC_TRAINER_SHARD", str, role="trainer")
    # streamrec replay
    replay_from: str | None = _option("STREAMREC_REPLAY_FROM", str, role="replay")
    replay_to: str | None = _option("STREAMREC_REPLAY_TO", str, role="replay")
    replay_publish: str | None = _option("STREAMREC_REPLAY_PUBLISH", str, role="replay")
    replay_gate: str | None = _option("STREAMREC_REPLAY_GATE", str, role="replay")
    replay_idle_timeout: float | None = _option(
        "STREAMREC_REPLAY_IDLE_TIMEOUT", parse_duration, role="replay"
    )
    replay_lateness: float | None = _option(
        "STREAMREC_REPLAY_LATENESS", parse_duration, role="replay"
    )
    # streamrec retrain
    retrain_from: str | None = _option("STREAMREC_RETRAIN_FROM", str, role="retrain")
    retrain_to: str | None = _option("STREAMREC_RETRAIN_TO", str, role="retrain")
    retrain_input: str | None = _option("STREAMREC_RETRAIN_INPUT", str, role="retrain")
    retrain_publish: str | None = _option("STREAMREC_RETRAIN_PUBLISH", str, role="retrain")
    retrain_gate: str | None = _option("STREAMREC_RETRAIN_GATE", str, role="retrain")
    retrain_tail: int | None = _option("STREAMREC_RETRAIN_TAIL", parse_count, role="retrain")
    spark_master: str | None = _option("STREAMREC_SPARK_MASTER", str, role="retrain")
    retrain_every: float | None = _option("STREAMREC_RETRAIN_EVERY", parse_duration, role="retrain")
    retrain_records_per_task: int | None = _option(
        "STREAMREC_RETRAIN_RECORDS_PER_TASK", parse_count, role="retrain"
    )
    retrain_idle_timeout: float | None = _option(
        "STREAMREC_RETRAIN_IDLE_TIMEOUT", parse_duration, role="retrain"
    )
    retrain_lateness: float | None = _option(
        "STREAMREC_RETRAIN_LATENESS", parse_duration, role="retrain"
    )
    # streamrec experiment
    experiment_challenger: str | None = _option(
        "STREAMREC_EXPERIMENT_CHALLENGER", str, role="experiment"
    )
    experiment_params: tuple[str, ...] | None = _option(
        "STREAMREC_EXPERIMENT_PARAMS", _words, role="experiment"
    )
    experiment_version: int | None = _option(
        "STREAMREC_EXPERIMENT_VERSION", parse_count, role="experiment"
    )
    experiment_share: float | None = _option("STREAMREC_EXPERIMENT_SHARE", float, role="experiment")
    experiment_shadow: bool | None = _option(
        "STREAMREC_EXPERIMENT_SHADOW", _env_bool, role="experiment"
    )
    experiment_auto: bool | None = _option(
        "STREAMREC_EXPERIMENT_AUTO", _env_bool, role="experiment"
    )
    experiment_min_judged: int | None = _option(
        "STREAMREC_EXPERIMENT_MIN_JUDGED", parse_count, role="experiment"
    )
    experiment_alpha: float | None = _option("STREAMREC_EXPERIMENT_ALPHA", float, role="experiment")
    experiment_tau: float | None = _option("STREAMREC_EXPERIMENT_TAU", float, role="experiment")
    experiment_name: str | None = _option("STREAMREC_EXPERIMENT_NAME", str, role="experiment")
    experiment_json: bool | None = _option(
        "STREAMREC_EXPERIMENT_JSON", _env_bool, role="experiment"
    )
    experiment_promote: bool | None = _option(
        "STREAMREC_EXPERIMENT_PROMOTE", _env_bool, role="experiment"
    )
    # streamrec models
    models_json: bool | None = _option("STREAMREC_MODELS_JSON", _env_bool, role="models")
    models_namespace: str | None = _option("STREAMREC_MODELS_NAMESPACE", str, role="models")
    export_format: str | None = _option("STREAMREC_EXPORT_FORMAT", str, role="models")
    export_top_n: int | None = _option("STREAMREC_EXPORT_TOP_N", parse_count, role="models")
    export_output: str | None = _option("STREAMREC_EXPORT_OUTPUT", str, role="models")
    # streamrec batch-score
    batch_users: str | None = _option("STREAMREC_BATCH_USERS", str, role="batch-score")
    batch_output: str | None = _option("STREAMREC_BATCH_OUTPUT", str, role="batch-score")
    batch_format: str | None = _option("STREAMREC_BATCH_FORMAT", str, role="batch-score")
    batch_chunk_size: int | None = _option(
        "STREAMREC_BATCH_CHUNK_SIZE", parse_count, role="batch-score"
    )
    batch_category: tuple[str, ...] | None = _option(
        "STREAMREC_BATCH_CATEGORY", _words, role="batch-score"
    )
    batch_exclude: tuple[str, ...] | None = _option(
        "STREAMREC_BATCH_EXCLUDE", _words, role="batch-score"
    )
    # streamrec catalog
    catalog_json: bool | None = _option("STREAMREC_CATALOG_JSON", _env_bool, role="catalog")
    # streamrec tail
    tail_from_beginning: bool | None = _option(
        "STREAMREC_TAIL_FROM_BEGINNING", _env_bool, role="tail"
    )
    tail_user: str | None = _option("STREAMREC_TAIL_USER", str, role="tail")
    tail_max: int | None = _option("STREAMREC_TAIL_MAX", parse_count, role="tail")
    tail_timeout: float | None = _option("STREAMREC_TAIL_TIMEOUT", float, role="tail")
    # streamrec console
    console_scorer: str | None = _option("STREAMREC_CONSOLE_SCORER", str, role="console")
    console_port: int | None = _option("STREAMREC_CONSOLE_PORT", parse_count, role="console")
    # streamrec demo
    demo_duration: float | None = _option("STREAMREC_DEMO_DURATION", parse_duration, role="demo")
    demo_rate: float | None = _option("STREAMREC_DEMO_RATE", float, role="demo")
    demo_users: int | None = _option("STREAMREC_DEMO_USERS", parse_count, role="demo")
    demo_pages: int | None = _option("STREAMREC_DEMO_PAGES", parse_count, role="demo")
    demo_json: bool | None = _option("STREAMREC_DEMO_JSON", _env_bool, role="demo")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from ``env`` (default ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in _ENV:
            value = env_value(name, env)
            if value is not None:
                values[name] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def __post_init__(self) -> None:
        # Scorers (and trainers) of different model names must never share a consumer
        # group: they would split the partitions between them, each model seeing part of
        # the traffic. So the default group carries the model name ("default" keeps the
        # plain names, which deployments already committed under).
        if not self.scorer_group:
            object.__setattr__(self, "scorer_group", _group_of(SCORER_GROUP, self.model_name))
        if not self.trainer_group:
            object.__setattr__(self, "trainer_group", _group_of(TRAINER_GROUP, self.model_name))

    def trainer_group_of(self, namespace: str) -> str:
        """The group the trainer of ``namespace`` commits under: this model name's own,
        or, for a challenger (and a promoted one), the group a trainer started with
        ``STREAMREC_MODEL_NAME=<namespace>`` takes (``<trainer group>.<namespace>`` when
        the group was set).

        >>> Settings(model_name="default").trainer_group_of("default.xab")
        'streamrec-trainer.default.xab'
        >>> Settings(model_name="m", trainer_group="t").trainer_group_of("m.xab")
        't.m.xab'
        """
        if namespace == self.model_name:
            return self.trainer_group
        if self.trainer_group == _group_of(TRAINER_GROUP, self.model_name):
            return _group_of(TRAINER_GROUP, namespace)
        return f"{self.trainer_group}.{namespace}"

    def validate(self) -> None:
        for name in (
            "partitions",
            "replication_factor",
            "k",
            "history_length",
            "batch_size",
            "batches_in_flight",
        ):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("web_port", "kafka_port", "redis_port"):
            if not 1 <= getattr(self, name) <= 65535:
                raise ConfigurationError(
                    f"{name} must be a TCP port (1-65535), got {getattr(self, name)}"
                )
        if self.catalog_unknown not in UNKNOWN_POLICIES:
            raise ConfigurationError(
                f"STREAMREC_CATALOG_UNKNOWN must be allow or deny, got {self.catalog_unknown!r}"
            )
        if self.scorer_engine not in SCORER_ENGINES:
            raise ConfigurationError(
                f"STREAMREC_SCORER_ENGINE must be one of {', '.join(SCORER_ENGINES)}, "
                f"got {self.scorer_engine!r}"
            )
        if self.k > MAX_K:
            raise ConfigurationError(f"k must be at most {MAX_K}, got {self.k}")
        if not 0 <= self.fresh_slots < self.k:
            raise ConfigurationError(
                f"STREAMREC_FRESH_SLOTS must be from 0 to k - 1 ({self.k - 1}), "
                f"got {self.fresh_slots}"
            )
        if self.fresh_window_s <= 0 or self.fresh_max_views < 0:
            raise ConfigurationError(
                "STREAMREC_FRESH_WINDOW_S must be > 0 and STREAMREC_FRESH_MAX_VIEWS >= 0"
            )
        key = self.snapshot_key.get().encode()
        if key and len(key) < MIN_SNAPSHOT_KEY_BYTES:
            raise ConfigurationError(
                f"STREAMREC_SNAPSHOT_KEY holds {len(key)} bytes; use at least "
                f"{MIN_SNAPSHOT_KEY_BYTES} random bytes, e.g. `openssl rand -hex 32`"
            )
        if not (self.web_bind == "localhost" or _is_ip(self.web_bind)):
            raise ConfigurationError(
                f"STREAMREC_WEB_BIND must be an IP address (e.g. 127.0.0.1, 0.0.0.0, ::) or "
                f"localhost, got {self.web_bind!r}"
            )
        parse_api_tokens(self.api_tokens.get())  # a bad entry stops every command at start
        if self.rest_max_in_flight < 0:
            raise ConfigurationError(
                f"STREAMREC_REST_MAX_IN_FLIGHT must be >= 0 (0: no bound), got "
                f"{self.rest_max_in_flight}"
            )
        if self.stall_timeout_s <= 0:
            raise ConfigurationError(
                f"STREAMREC_STALL_TIMEOUT_S must be > 0, got {self.stall_timeout_s}"
            )
        if self.snapshot_interval <= 0 or self.model_poll_interval <= 0:
            raise ConfigurationError("snapshot_interval and model_poll_interval must be > 0")
        if self.redis_url and urlsplit(self.redis_url).scheme not in {"redis", "rediss", "unix"}:
            raise ConfigurationError(
                "REDIS_URL must start with redis://, rediss:// or unix://, "
                f"got {self.redacted_redis_url}"
            )
        if self.redis_cluster:
            self._validate_cluster_url()
        elif self.redis_url and "," in urlsplit(self.redis_url).netloc.rpartition("@")[2]:
            raise ConfigurationError(
                "REDIS_URL names several hosts, which only a Redis Cluster takes: set "
                "STREAMREC_REDIS_CLUSTER=1, or name one server"
            )

    def _validate_cluster_url(self) -> None:
        if not self.redis_url:
            raise ConfigurationError(
                "STREAMREC_REDIS_CLUSTER needs REDIS_URL: the address of one node of the "
                "cluster (the embedded server is a single node)"
            )
        parts = urlsplit(self.redis_url)
        if parts.scheme == "unix":
            raise ConfigurationError("a Redis Cluster is reached over TCP: REDIS_URL is unix://")
        if parts.path.strip("/") not in {"", "0"}:
            raise ConfigurationError(
                f"a Redis Cluster has only database 0; REDIS_URL names {parts.path.strip('/')}"
            )

    @staticmethod
    def env_var(name: str) -> str:
        """The environment variable behind setting ``name``."""
        return _ENV[name][0]

    # -- where the services are -------------------------------------------------------
    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def redacted_redis_url(self) -> str:
        """The Redis URL with any password replaced by ``***`` (for logs and status)."""
        parts = urlsplit(self.effective_redis_url)
        if parts.password is None:
            return self.effective_redis_url
        user = parts.username or ""
        hosts = parts.netloc.rpartition("@")[2]  # as written: one host, or a cluster's list
        netloc = f"{user}:***@{hosts}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    # -- client configuration, built in one place -------------------------------------
    @property
    def fetch_wait_ms(self) -> int:
        """``fetch.wait.max.ms`` of streamrec's consumers (see the field's comment)."""
        if self.fetch_max_wait_ms is not None:
            return self.fetch_max_wait_ms
        return EMBEDDED_FETCH_WAIT_MS if self.embedded_kafka else KAFKA_FETCH_WAIT_MS

    @property
    def producer_linger_ms(self) -> int:
        """``linger.ms`` of streamrec's producers (see the ``linger_ms`` field)."""
        if self.linger_ms is not None:
            return self.linger_ms
        return EMBEDDED_LINGER_MS if self.embedded_kafka else KAFKA_LINGER_MS

    def kafka_common(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "logger": librdkafka_log,
            # Idle connections closed by the broker are normal, not worth a line each.
            "log.connection.close": False,
        }

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        config = {
            **self.kafka_common(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": self.producer_linger_ms,
            "message.timeout.ms": 120_000,
        }
        config.update(overrides)
        return config

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        config = {
            **self.kafka_common(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": max(500, self.session_timeout_ms // 4),
            "enable.partition.eof": False,
            # Return a fetch after this long even with little data: bounds latency on
            # brokers that hold fetches for the whole wait.
            "fetch.wait.max.ms": self.fetch_wait_ms,
        }
        config.update(overrides)
        return config

    def faust_broker_url(self) -> str:
        return ",".join(f"kafka://{server}" for server in self.bootstrap_servers.split(","))

    def redis_client(self, **kwargs: Any) -> redis_sync.Redis:
        """A ``redis.Redis`` for :attr:`effective_redis_url` (username/password/TLS from it);
        a ``redis.cluster.RedisCluster`` when :attr:`redis_cluster` is set."""
        import redis

        kwargs.setdefault("socket_timeout", 2.0)
        kwargs.setdefault("socket_connect_timeout", 2.0)
        kwargs.setdefault("health_check_interval", 10)
        if self.redis_cluster:
            from streams.state.cluster_client import cluster_client

            return cluster_client(self.effective_redis_url, **kwargs)  # type: ignore[return-value]
        return redis.Redis.from_url(self.effective_redis_url, **kwargs)

    def redis_async_client(self, **kwargs: Any) -> redis_async.Redis:
        import redis.asyncio

        kwargs.setdefault("socket_timeout", 2.0)
        kwargs.setdefault("socket_connect_timeout", 2.0)
        if self.redis_cluster:
            from streams.state.cluster_client import async_cluster_client

            return async_cluster_client(self.effective_redis_url, **kwargs)  # type: ignore[return-value]
        return redis.asyncio.Redis.from_url(self.effective_redis_url, **kwargs)

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables :meth:`from_env` reads back.

        A child process given them sees the same services (the effective addresses, so
        an embedded broker started by the parent is the child's too), names and key.
        """
        env: dict[str, str] = {}
        for name, (var, parse) in _ENV.items():
            if name in _OPTIONS:
                continue  # a command's own option: not a setting children inherit
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, Secret):
                value = value.get()
            elif isinstance(value, bool):
                value = "1" if value else "0"
            elif parse is parse_duration:
                value = f"{float(value)!r}s"
            env[var] = str(value)
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        env["REDIS_URL"] = self.effective_redis_url
        # The child sees an address, not "embedded": give it the embedded broker's values.
        env["STREAMREC_LINGER_MS"] = str(self.producer_linger_ms)
        env["STREAMREC_FETCH_MAX_WAIT_MS"] = str(self.fetch_wait_ms)
        return env

    def describe(self) -> dict[str, Any]:
        """All settings with secrets hidden, for ``--help`` style listings and logs."""
        out = {}
        for f in fields(self):
            if f.name in _OPTIONS:
                continue
            value = getattr(self, f.name)
            if f.name == "redis_url" and value:
                value = self.redacted_redis_url
            out[f.name] = value if not isinstance(value, Path) else str(value)
        return out


# name -> (environment variable, parser), derived from the fields; the order is the order
# of the fields, which is the order of the README's table.
_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    f.name: (f.metadata["env"], f.metadata.get("parse") or _PARSERS[str(f.type)])
    for f in fields(Settings)
}
#: Fields that are a command's option (name -> the command), not a setting of a service.
_OPTIONS: dict[str, str] = {
    f.name: f.metadata["role"] for f in fields(Settings) if "role" in f.metadata
}
_RENAMED: dict[str, str] = {
    f.name: f.metadata["renamed_from"] for f in fields(Settings) if "renamed_from" in f.metadata
}


_WARNED: set[str] = set()


def env_value(name: str, env: Mapping[str, str] | None = None) -> Any:
    """Setting ``name`` as its environment variable gives it (None: not set).

    The one place a ``STREAMREC_*`` variable is read: :meth:`Settings.from_env` and every
    command-line option's fallback (``streams.cli.options.setting_option``) call it.
    """
    env = os.environ if env is None else env
    var, parse = _ENV[name]
    raw = env.get(var)
    old = _RENAMED.get(name)
    if (raw is None or raw == "") and old is not None and env.get(old):
        raw, var = env[old], old
        if old not in _WARNED:
            _WARNED.add(old)
            log.warning("%s is deprecated; set %s instead", old, _ENV[name][0])
    if raw is None or raw == "":
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{var}={raw!r} is not valid: {exc}") from exc


def renamed_variable(name: str) -> str | None:
    """The former name of setting ``name``'s variable, still read (None: never renamed)."""
    return _RENAMED.get(name)


def option_settings() -> dict[str, str]:
    """Fields that are a command's option -> the command (``streamrec`` for every one)."""
    return dict(_OPTIONS)
