"""Fixtures live in :mod:`tests.support`; they are registered here as pytest plugins."""

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.outages",
    "tests.support.redis_cluster",
    "tests.support.spark_cluster",
]
