"""``streamrec retrain`` on a real Spark standalone cluster, run as docs/operations.md says.

The cluster (:mod:`tests.support.spark_cluster`) is a master and one worker started from
the installed PySpark's jars on loopback. The commands are the ones of "Retraining on
Spark" in docs/operations.md, taken out of the page itself, with only the example master
URL replaced by the test cluster's: ``streamrec retrain --master spark://...`` and
``spark-submit --master spark://... <streams/retrain/submit.py>``. Each must rebuild, from
the embedded broker, the very model a ``local[2]`` retrain builds from the same events.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from online_model.persist.snapshot import dump_snapshot, read_meta
from streams.retrain.run import RetrainSpec, retrain_once
from streams.settings import Settings
from streams.time_range import TimeRange
from streams.wiring import snapshot_signing_key, snapshot_store
from tests.integration.test_retrain import BAD, _produce_with_bad_records, _views
from tests.support.spark_cluster import SparkCluster

pytestmark = [pytest.mark.spark, pytest.mark.spark_cluster]

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
SECTION = "Retraining on Spark"
#: The master URL the documented commands name (a cluster's usual master address).
DOC_MASTER = "spark://spark-master:7077"
#: Events learned online on the driver (``--tail``, set through the environment so the
#: command stays as documented): the rest, most of the log, is counted on the cluster.
TAIL = 300


def documented_cluster_commands(page: Path = OPERATIONS, title: str = SECTION) -> list[str]:
    """The shell lines of the section's sh blocks that run on ``DOC_MASTER``
    (continuations joined, comments dropped), as written."""
    text = page.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text[start : end if end >= 0 else None], re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split())
            if not line.startswith("#") and f"--master {DOC_MASTER}" in line:
                found.append(line)
    return found


#: The commands of the section run here, by the tool that starts them.
TESTED = ("streamrec", "spark-submit")


def test_the_section_documents_the_tested_ways_onto_a_cluster() -> None:
    commands = documented_cluster_commands()
    tested = [c for c in commands if c.split()[0] in TESTED]
    assert [c.split()[0] for c in tested] == list(TESTED), commands
    assert "streams.retrain.submit" in tested[1]
    # The hybrid's batch layer is sent by the same spark-submit line, with other options.
    submit = tested[1].removesuffix("--publish candidate")
    others = [c for c in commands if c not in tested]
    assert others and all(c.startswith(f"STREAMREC_MODEL_NAME=hybrid {submit}") for c in others)
    # The page says where they are tested.
    assert Path(__file__).relative_to(ROOT).as_posix() in OPERATIONS.read_text()


def _local_content_hash(spark: Any, settings: Settings) -> str:
    """The content hash of what ``streamrec retrain`` builds on ``local[2]`` (every event up
    to now, --tail TAIL): the retrain's own code, on the session's local SparkContext."""
    now = int(time.time() * 1000)
    spec = RetrainSpec(settings.model_spec, {}, TimeRange(None, now), tail=TAIL)
    outcome = retrain_once(spark, settings, spec)
    key = snapshot_signing_key(settings)
    return read_meta(dump_snapshot(outcome.snapshot, key), key).content_hash


def _finished_apps(cluster: SparkCluster) -> set[str]:
    apps = cluster.status().get("completedapps", [])
    assert isinstance(apps, list)
    return {str(app["id"]) for app in apps if app.get("state") == "FINISHED"}


def _apps_finished_since(
    cluster: SparkCluster, before: set[str], timeout: float = 15.0
) -> set[str]:
    """The applications that finished on ``cluster`` since ``before`` (the master learns
    of a driver's end a moment after its process exits)."""
    deadline = time.monotonic() + timeout
    while not (new := _finished_apps(cluster) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    return new


@pytest.mark.parametrize("tool", TESTED)
def test_the_documented_cluster_command_builds_the_local_model_and_publishes_it(
    tool: str,
    spark_cluster: SparkCluster,
    spark: Any,
    settings: Settings,
    settings_env: dict[str, str],
    tmp_path: Path,
) -> None:
    [command] = [c for c in documented_cluster_commands() if c.split()[0] == tool]
    command = command.replace(DOC_MASTER, spark_cluster.master_url)

    base = int(time.time() * 1000) - 3_600_000
    views = _views(1_500, base, seed=7)
    _produce_with_bad_records(settings, views)
    expected = _local_content_hash(spark, settings)

    # `python`, `streamrec` and `spark-submit` are this virtualenv's, as on a machine where
    # streamrec[spark] is installed; its interpreter runs the executors' Python workers.
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **settings_env,
        **spark_cluster.client_env,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "STREAMREC_RETRAIN_TAIL": str(TAIL),
        "STREAMREC_LOG_LEVEL": "warning",
    }
    before = _finished_apps(spark_cluster)
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", "-c", command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 0, f"{command}\n{proc.stderr[-4000:]}\n{spark_cluster.logs()}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    # It ran on the cluster: one more application finished there.
    assert len(_apps_finished_since(spark_cluster, before)) == 1, spark_cluster.status()
    assert out["events"] == len(views)
    assert out["bulk_events"] == len(views) - TAIL  # counted by the cluster's executor
    assert out["bad_by_reason"] == dict.fromkeys(BAD.values(), 1)
    assert out["source"]["stopped"] == {str(p): ["end_of_log"] for p in range(3)}
    # The very model local[2] builds from the same events.
    assert out["content_hash"] == expected
    # Published as documented: a candidate, the current model unchanged.
    assert out["publish"] == "candidate" and out["current"] is False
    store = snapshot_store(settings)
    snap = store.load(out["version"])
    assert snap.meta.origin == "retrain"
    assert snap.meta.content_hash == expected
    assert store.current_version() is None
    print(f"{tool} on {spark_cluster.master_url}: {seconds:.1f}s, retrain {out['seconds']}")
