"""Shared fixtures (a pytest plugin, registered in tests/conftest.py).

Integration tests share one session-scoped Kafka broker and one Redis server:
the ones named by ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` if set; else
testcontainers when a Docker engine answers; else the embedded servers that
``streamrec up`` runs. Every test gets its own uuid-named topics, consumer groups and
Redis key prefix, so tests never see each other's data. Unit tests need none of this.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.services.embedded import EmbeddedServices, free_port
from streams.settings import SCORER_ENGINES, Secret, Settings
from streams.state.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)

TEST_SNAPSHOT_KEY = "test-signing-key-0123456789abcdef"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath)
        if f"{os.sep}integration{os.sep}" in path:
            item.add_marker(pytest.mark.integration)
        if f"{os.sep}reliability{os.sep}" in path:
            item.add_marker(pytest.mark.reliability)


def _docker_engine() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@dataclasses.dataclass
class ServiceEndpoints:
    bootstrap_servers: str
    redis_url: str
    origin: str


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoints]:
    """One broker and one Redis for the whole session."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    redis_url = os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        if (not bootstrap or not redis_url) and _docker_engine():
            from testcontainers.kafka import KafkaContainer
            from testcontainers.redis import RedisContainer

            if not bootstrap:
                kafka = stack.enter_context(KafkaContainer().with_kraft())
                bootstrap = kafka.get_bootstrap_server()
            if not redis_url:
                redis_c = stack.enter_context(RedisContainer())
                host = redis_c.get_container_host_ip()
                redis_url = f"redis://{host}:{redis_c.get_exposed_port(6379)}/0"
            origin = "testcontainers"
        elif not bootstrap or not redis_url:
            embedded = EmbeddedServices(
                Settings(
                    kafka_bootstrap_servers=bootstrap,
                    redis_url=redis_url,
                    kafka_port=free_port(),
                    redis_port=free_port(),
                    state_dir=Path(tmp_path_factory.mktemp("services")),
                )
            )
            embedded.up(timeout=60)
            stack.callback(embedded.down)
            bootstrap = bootstrap or embedded.settings.bootstrap_servers
            redis_url = redis_url or embedded.settings.effective_redis_url
            origin = "embedded"
        else:
            origin = "environment"
        log.info("test services origin=%s kafka=%s", origin, bootstrap)
        yield ServiceEndpoints(bootstrap, redis_url, origin)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


#: The engines :func:`scorer_engine` runs a test on (``STREAMREC_TEST_SCORER_ENGINES=kafka``
#: runs only one of them, e.g. for a faster local run).
TEST_ENGINES = tuple(
    engine
    for engine in os.environ.get("STREAMREC_TEST_SCORER_ENGINES", ",".join(SCORER_ENGINES)).split(
        ","
    )
    if engine
)


@pytest.fixture(params=TEST_ENGINES)
def scorer_engine(request: pytest.FixtureRequest) -> str:
    """Each scorer engine in turn, for a test that asks for it (or is marked
    :data:`on_every_engine`): its ``settings`` (and so its scorer processes) use it."""
    return str(request.param)


#: Runs a test (or, as ``pytestmark``, a module) once per scorer engine; other tests run
#: on the default engine, or on ``STREAMREC_SCORER_ENGINE`` when the suite is given one.
on_every_engine = pytest.mark.usefixtures("scorer_engine")


def settings_for(services: ServiceEndpoints, unique: str, tmp_path: Path) -> Settings:
    """Settings pointing at the shared services, with names of their own (``unique``);
    for fixtures of a wider scope than ``settings``."""
    engine = os.environ.get("STREAMREC_SCORER_ENGINE")
    return Settings(
        **({"scorer_engine": engine} if engine else {}),
        kafka_bootstrap_servers=services.bootstrap_servers,
        redis_url=services.redis_url,
        state_dir=tmp_path / "state",
        topic_page_views=f"pv-{unique}",
        topic_recommendations=f"rec-{unique}",
        topic_dlq=f"pv-{unique}.dlq",
        topic_pages=f"pages-{unique}",
        model_name=f"m-{unique}",
        snapshot_key=Secret(TEST_SNAPSHOT_KEY),
        scorer_group=f"scorer-{unique}",
        trainer_group=f"trainer-{unique}",
        web_port=free_port(),
    )


@pytest.fixture
def settings(
    services: ServiceEndpoints, unique: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Settings:
    """Settings pointing at the shared services, with this test's own names (and the
    engine of :func:`scorer_engine` when the test runs once per engine)."""
    base = settings_for(services, unique, tmp_path)
    if "scorer_engine" in request.fixturenames:
        return dataclasses.replace(base, scorer_engine=request.getfixturevalue("scorer_engine"))
    return base


@pytest.fixture
def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess needs to see the same settings."""
    return {**os.environ, **settings.to_env()}


@pytest.fixture(scope="session")
def _spark_contexts() -> Iterator[dict[str, Any]]:
    """The session's local[2] SparkContext, once made (stopped at the end)."""
    held: dict[str, Any] = {}
    yield held
    sc = held.get("sc")
    if sc is not None and sc._jsc is not None:
        sc.stop()


@pytest.fixture
def spark(_spark_contexts: dict[str, Any]) -> Any:
    """One local[2] SparkContext shared by the session's tests (start-up costs seconds),
    made again when a test stopped it: an in-process ``streamrec retrain`` stops the
    context it ran on, which is this one."""
    from streams.retrain import job  # imported late: pyspark is an optional extra

    sc = _spark_contexts.get("sc")
    if sc is None or sc._jsc is None:
        sc = _spark_contexts["sc"] = job.spark_context("local[2]", app_name="streamrec-tests")
    return sc


StoreFactory = Callable[..., SnapshotStore]


@pytest.fixture
def store_factory(settings: Settings) -> StoreFactory:
    """Snapshot stores on the test's Redis: ``store_factory()`` is the test's own model
    namespace and key; ``model_name=``, ``key=`` (bytes) and ``client=`` override them."""

    def make(
        model_name: str | None = None,
        key: bytes = TEST_SNAPSHOT_KEY.encode(),
        client: Any | None = None,
        keep: int = 20,
    ) -> SnapshotStore:
        return SnapshotStore(
            client if client is not None else settings.redis_client(),
            model_name or settings.model_name,
            key,
            keep=keep,
        )

    return make


@pytest.fixture
def store(store_factory: StoreFactory) -> SnapshotStore:
    """The snapshot store of the test's own model namespace."""
    return store_factory()
