"""``streamrec retrain`` on a real Spark standalone cluster, run as docs/operations.md says.

The cluster (:mod:`tests.support.spark_cluster`) is a master and one worker started from
the installed PySpark's jars on loopback. The commands are the ones of "Retraining on
Spark" in docs/operations.md, taken out of the page itself, with only the example master
URL replaced by the test cluster's: ``streamrec retrain --master spark://...``,
``spark-submit --master spark://... <streams/retrain/submit.py>``, and the latter with
``--model hybrid`` for the hybrid's batch layer. Each must run as one application on the
cluster and rebuild, from the embedded broker, the very model (or batch layer) a
``local[2]`` retrain builds from the same events: the same content hash.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from online_model.persist.batch_layer_file import dump_batch_layer, load_batch_layer
from online_model.persist.snapshot import SnapshotMeta, dump_snapshot, read_meta
from streams.retrain.run import RetrainSpec, retrain_batch_layer, retrain_once
from streams.settings import Settings
from streams.time_range import TimeRange
from streams.wiring import batch_layer_store, snapshot_signing_key, snapshot_store
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


#: The section's cluster commands, by what starts them: the model (covisit), by
#: ``streamrec`` and by ``spark-submit``, and the hybrid's batch layer (its namespace set
#: first), by ``spark-submit``.
KINDS = ("streamrec", "spark-submit", "hybrid spark-submit")
#: How the hybrid's line names its namespace; the test gives its own instead.
HYBRID_NAMESPACE = "STREAMREC_MODEL_NAME=hybrid"


def _kind(command: str) -> str:
    if command.startswith(f"{HYBRID_NAMESPACE} "):
        return f"hybrid {command.split()[1]}"
    return command.split()[0]


def documented(kind: str) -> str:
    [command] = [c for c in documented_cluster_commands() if _kind(c) == kind]
    return command


def test_the_section_documents_the_tested_commands_and_says_so() -> None:
    commands = documented_cluster_commands()
    assert sorted(_kind(c) for c in commands) == sorted(KINDS), commands
    assert "streams.retrain.submit" in documented("spark-submit")
    # The hybrid's batch layer goes through the same spark-submit line, other options.
    submit = documented("spark-submit").removesuffix("--publish candidate")
    assert documented("hybrid spark-submit").startswith(f"{HYBRID_NAMESPACE} {submit}")
    assert Path(__file__).relative_to(ROOT).as_posix() in OPERATIONS.read_text()


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


def _run_on(
    cluster: SparkCluster, command: str, settings_env: dict[str, str], cwd: Path
) -> dict[str, Any]:
    """Run the documented ``command`` on ``cluster`` (its master URL put in); check that it
    ran there, as one application; return its JSON summary."""
    command = command.replace(DOC_MASTER, cluster.master_url)
    # `python`, `streamrec` and `spark-submit` are this virtualenv's, as on a machine where
    # streamrec[spark] is installed; its interpreter runs the executors' Python workers.
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **settings_env,
        **cluster.client_env,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "STREAMREC_RETRAIN_TAIL": str(TAIL),
        "STREAMREC_LOG_LEVEL": "warning",
    }
    before = _finished_apps(cluster)
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=240
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 0, f"{command}\n{proc.stderr[-4000:]}\n{cluster.logs()}"
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(_apps_finished_since(cluster, before)) == 1, cluster.status()
    print(f"{command}: {seconds:.1f}s, retrain {out['seconds']}")
    return out


def _produce(settings: Settings) -> list[dict[str, Any]]:
    views = _views(1_500, int(time.time() * 1000) - 3_600_000, seed=7)
    _produce_with_bad_records(settings, views)
    return views


@pytest.mark.parametrize("kind", ["streamrec", "spark-submit"])
def test_the_documented_cluster_command_builds_the_local_model_and_publishes_it(
    kind: str,
    spark_cluster: SparkCluster,
    spark: Any,
    settings: Settings,
    settings_env: dict[str, str],
    tmp_path: Path,
) -> None:
    views = _produce(settings)
    # What the same retrain builds on local[2] (every event up to now, --tail TAIL): the
    # retrain's own code, on the session's local SparkContext.
    spec = RetrainSpec(settings.model_spec, {}, TimeRange(None, int(time.time() * 1000)))
    local = retrain_once(spark, settings, dataclasses.replace(spec, tail=TAIL)).snapshot
    key = snapshot_signing_key(settings)
    expected = read_meta(dump_snapshot(local, key), key).content_hash

    out = _run_on(spark_cluster, documented(kind), settings_env, tmp_path)

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


def test_the_documented_hybrid_command_builds_the_local_batch_layer_and_publishes_it(
    spark_cluster: SparkCluster,
    spark: Any,
    settings: Settings,
    settings_env: dict[str, str],
    tmp_path: Path,
) -> None:
    views = _produce(settings)
    spec = RetrainSpec("hybrid", {}, TimeRange(None, int(time.time() * 1000)))
    local = retrain_batch_layer(spark, settings, spec)
    key = snapshot_signing_key(settings)
    meta = SnapshotMeta(settings.model_name, offsets=local.offsets, origin="retrain")
    expected = load_batch_layer(dump_batch_layer(meta, local.layer, key), key).meta.content_hash

    # The test's own namespace, not the shared "hybrid".
    command = documented("hybrid spark-submit")
    command = command.replace(HYBRID_NAMESPACE, f"STREAMREC_MODEL_NAME={settings.model_name}")
    out = _run_on(spark_cluster, command, settings_env, tmp_path)

    assert out["events"] == len(views)
    assert out["bad_by_reason"] == dict.fromkeys(BAD.values(), 1)
    assert out["content_hash"] == expected  # the very layer local[2] fits
    assert out["publish"] == "live" and out["version"] is not None
    published = batch_layer_store(settings).load(out["version"])
    assert published.meta.content_hash == expected
    assert published.meta.offsets == local.offsets
