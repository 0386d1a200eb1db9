"""The layout's one hard rule: ``online_model`` is pure (no Kafka, Redis or Spark client)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("confluent_kafka", "aiokafka", "faust", "redis", "pyspark")

_PROBE = """
import importlib, json, pkgutil, sys
import online_model
for info in pkgutil.walk_packages(online_model.__path__, "online_model."):
    importlib.import_module(info.name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_online_model_imports_neither_kafka_nor_redis_nor_spark() -> None:
    # A fresh interpreter: this test process has imported the streams side already.
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "online_model" in loaded
    assert not loaded & set(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
