"""Are the broker and Redis there? One answer for every command, within seconds.

librdkafka retries an unreachable broker for as long as a call's timeout allows and logs
every attempt, so a command that simply started its clients took 10-30 s and printed
hundreds of ``Connection refused`` lines before failing. Every command that needs Kafka
or Redis therefore calls :func:`require` before it builds a client; ``streamrec status``
and the scorer's readiness endpoint ask the same probes.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streams.errors import ServiceError, StreamrecError
from streams.settings import Settings

#: Seconds each probe may take; a refused connection answers at once.
PROBE_TIMEOUT_S = 2.0

_quiet = logging.getLogger("streams.services.probes.librdkafka")
_quiet.setLevel(logging.CRITICAL)  # a probe's failure is its answer, not log lines
_quiet.propagate = False


class ServiceUnavailable(ServiceError):
    """Kafka or Redis does not answer; the message says where and what to do."""


def _addresses(bootstrap_servers: str) -> list[tuple[str, int]]:
    """``"PLAINTEXT://a:9092,b"`` -> ``[("a", 9092), ("b", 9092)]``; ValueError if malformed."""
    out = []
    for entry in bootstrap_servers.split(","):
        entry = entry.strip().rpartition("://")[2]
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep:
            host, port = entry, "9092"
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise ValueError("no address")
    return out


def _tcp_problem(addresses: list[tuple[str, int]], timeout: float) -> str | None:
    """None when one of ``addresses`` accepts a TCP connection, else why none did."""
    reasons = []
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except socket.gaierror:
            reasons.append(f"cannot resolve host {host}")
        except ConnectionRefusedError:
            reasons.append(f"connection to {host}:{port} refused")
        except TimeoutError:
            reasons.append(f"no answer from {host}:{port} in {timeout:g} s")
        except OSError as exc:
            reasons.append(f"{host}:{port}: {exc.strerror or exc}")
    return "; ".join(reasons)


def kafka_problem(
    bootstrap_servers: str,
    timeout: float = PROBE_TIMEOUT_S,
    config: Mapping[str, Any] | None = None,
) -> str | None:
    """None when a Kafka metadata request answers within ``timeout`` s, else why not.

    A plain TCP connect first gives the common answers (refused, unknown host) at once
    and in words; only a listening address gets the metadata request, which tells a
    broker from anything else on that port.
    """
    try:
        addresses = _addresses(bootstrap_servers)
    except ValueError:
        return f"cannot parse the address list {bootstrap_servers!r}"
    started = time.monotonic()
    problem = _tcp_problem(addresses, max(0.5, timeout / len(addresses)))
    if problem:
        return problem
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {**(config or {}), "bootstrap.servers": bootstrap_servers, "logger": _quiet}  # type: ignore[dict-item]
    )
    wait = max(0.5, timeout - (time.monotonic() - started))
    try:
        admin.list_topics(timeout=wait)
    except KafkaException as exc:
        reason = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc
        return f"no Kafka metadata answer in {wait:.1f} s ({reason})"
    return None


def kafka_reachable(bootstrap_servers: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a Kafka metadata request answers within ``timeout`` seconds."""
    return kafka_problem(bootstrap_servers, timeout) is None


def redis_problem(settings: Settings, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when Redis answers a PING within ``timeout`` seconds, else why not."""
    import redis

    try:  # a cluster client asks for the cluster's nodes as it is made
        client = settings.redis_client(
            socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=0
        )
    except StreamrecError as exc:
        return str(exc)
    try:
        client.ping()
        return None
    except redis.AuthenticationError as exc:
        return f"it refused the credentials ({exc})"
    except redis.ResponseError:
        return None  # it answered; whether this user may PING is not the question
    except (redis.RedisError, OSError) as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(exc).lower():
            return "connection refused"
        return str(exc) or type(exc).__name__
    finally:
        client.close()


def redis_reachable(settings: Settings, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a Redis PING answers within ``timeout`` seconds."""
    return redis_problem(settings, timeout) is None


def _advice(settings: Settings, service: str) -> str:
    if service == "Kafka":
        embedded, var = settings.embedded_kafka, "KAFKA_BOOTSTRAP_SERVERS"
        what = "brokers"
    else:
        embedded, var = settings.embedded_redis, "REDIS_URL"
        what = "server"
    if embedded:
        return f"start the embedded services with `streamrec up`, or set {var} to your {what}"
    return f"check {var} and that the {what} {'are' if what == 'brokers' else 'is'} running"


def require(
    settings: Settings,
    kafka: bool = True,
    redis: bool = False,
    timeout: float = PROBE_TIMEOUT_S,
) -> None:
    """Raise :class:`ServiceUnavailable` naming each needed service that does not answer.

    Both probes run at once, so the worst case is one ``timeout``, not two.
    """
    checks: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        if kafka:
            checks["Kafka"] = (
                settings.bootstrap_servers,
                pool.submit(kafka_problem, settings.bootstrap_servers, timeout),
            )
        if redis:
            checks["Redis"] = (
                settings.redacted_redis_url,
                pool.submit(redis_problem, settings, timeout),
            )
        failures = [
            f"{name} is not reachable at {address} ({problem}): {_advice(settings, name)}"
            for name, (address, future) in checks.items()
            if (problem := future.result()) is not None
        ]
    if failures:
        raise ServiceUnavailable("; ".join(failures))
