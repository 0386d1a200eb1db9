"""A real Spark standalone cluster on loopback: one master and one worker (1 core, 1g).

Both run from the installed PySpark's own jars (``spark-class``), so no Spark download is
needed: ``org.apache.spark.deploy.master.Master`` on free ports of 127.0.0.1, then
``org.apache.spark.deploy.worker.Worker`` registering with it. :func:`spark_standalone`
waits until the master's JSON page (``http://127.0.0.1:<webui>/json/``) lists the worker
alive, and stops both, with the executors and Python workers they started, when it exits
(also when starting failed). Each process runs in a session of its own: stopping it
signals its whole process group, which is where the worker's executor JVMs and their
Python daemons live.

A client of the cluster (``streamrec retrain --master``, ``spark-submit``) gets
:attr:`SparkCluster.client_env`: the driver binds to loopback as the cluster does, its
JVMs start light (``spark-defaults.conf``), and the executors run this interpreter
(``PYSPARK_PYTHON``), where ``streamrec`` is installed (editable: the executors import the
working tree, as a cluster's workers import the package installed on each of them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.services.embedded import free_port

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

#: JVM options of the master: no REST submission server (it would take the fixed port 6066).
DAEMON_OPTS = "-Dspark.master.rest.enabled=false"

#: Every JVM here starts with the client compiler alone and one GC thread, as a local
#: retrain's driver does (``streams.retrain.job.LOCAL_JVM_OPTIONS``): they only schedule
#: and move bytes, and the test machine's cores are few.
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

#: ``spark-defaults.conf`` of the clients (the drivers, and the executors they ask for).
CLIENT_DEFAULTS = f"""\
spark.driver.extraJavaOptions {JVM_OPTIONS}
spark.executor.extraJavaOptions {JVM_OPTIONS}
"""


def spark_class() -> Path:
    """The installed PySpark's ``spark-class`` launcher."""
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


@dataclasses.dataclass
class SparkCluster:
    master_url: str
    webui_url: str
    #: Environment a driver needs on top of its own to use this cluster.
    client_env: dict[str, str]
    log_dir: Path

    def status(self) -> dict[str, object]:
        """The master's JSON status page (workers, apps, cores in use...)."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=5) as response:
            return dict(json.load(response))

    def logs(self, limit: int = 4000) -> str:
        """The tail of the master's and worker's logs, for a failure message."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-limit:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def _daemon_env(work_dir: Path, conf_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "SPARK_MASTER_HOST": HOST,
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOCAL_HOSTNAME": HOST,
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_DAEMON_JAVA_OPTS": JVM_OPTIONS,
        "SPARK_MASTER_OPTS": DAEMON_OPTS,
        "SPARK_WORKER_DIR": str(work_dir),
        # Our spark-defaults.conf, no spark-env.sh: nothing of the machine's own.
        "SPARK_CONF_DIR": str(conf_dir),
        # The executors' Python workers, should a driver not name one.
        "PYSPARK_PYTHON": sys.executable,
    }
    env.pop("SPARK_HOME", None)  # the installed PySpark's, whatever the machine has
    return env


def _start(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: executors included
        )


def _stop(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """SIGTERM the process groups of ``procs`` (each with what it started), then SIGKILL
    what is left of them."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + timeout
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        if all(proc.returncode is not None for proc in procs):
            break
    for proc in procs:  # the leader is gone; an executor or a Python daemon may not be
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_for_worker(
    cluster: SparkCluster, procs: dict[str, subprocess.Popen[bytes]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the {name} exited with {proc.returncode} while starting:\n" + cluster.logs()
                )
        try:
            status = cluster.status()
        except OSError as exc:  # the web UI is not up yet
            last = exc
        else:
            last = status.get("aliveworkers")
            if isinstance(last, int) and last >= 1:
                return
        time.sleep(0.25)
    raise RuntimeError(f"no worker registered within {timeout}s ({last!r}):\n" + cluster.logs())


@contextlib.contextmanager
def spark_standalone(base_dir: Path, timeout: float = 90.0) -> Iterator[SparkCluster]:
    """A master and one worker (1 core, 1g) on loopback, stopped when the block ends."""
    base_dir.mkdir(parents=True, exist_ok=True)
    work_dir = base_dir / "work"
    work_dir.mkdir(exist_ok=True)
    port, webui = free_port(), free_port()
    cluster = SparkCluster(
        master_url=f"spark://{HOST}:{port}",
        webui_url=f"http://{HOST}:{webui}",
        client_env={
            "SPARK_LOCAL_IP": HOST,
            "SPARK_LOCAL_HOSTNAME": HOST,
            "PYSPARK_PYTHON": sys.executable,
        },
        log_dir=base_dir,
    )
    conf_dir = base_dir / "conf"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "spark-defaults.conf").write_text(CLIENT_DEFAULTS)
    cluster.client_env["SPARK_CONF_DIR"] = str(conf_dir)
    env = _daemon_env(work_dir, conf_dir)
    launcher = str(spark_class())
    procs: dict[str, subprocess.Popen[bytes]] = {}
    started = time.monotonic()
    try:
        master = ["org.apache.spark.deploy.master.Master", "--host", HOST]
        master += ["--port", str(port), "--webui-port", str(webui)]
        procs["master"] = _start([launcher, *master], env, base_dir / "master.log")
        worker = ["org.apache.spark.deploy.worker.Worker", cluster.master_url, "--host", HOST]
        worker += ["--port", "0", "--webui-port", "0", "--cores", "1", "--memory", "1g"]
        worker += ["--work-dir", str(work_dir)]
        procs["worker"] = _start([launcher, *worker], env, base_dir / "worker.log")
        _wait_for_worker(cluster, procs, timeout)
        log.info("spark cluster %s up in %.1fs", cluster.master_url, time.monotonic() - started)
        yield cluster
    finally:
        _stop(list(procs.values()))


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """One standalone cluster (master + one worker) for the tests of a session."""
    with spark_standalone(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster
