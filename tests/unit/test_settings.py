from __future__ import annotations

import dataclasses

import pytest

from online_model.errors import ConfigurationError
from streams.settings import Secret, Settings


def test_defaults_are_embedded() -> None:
    s = Settings.from_env({})
    assert s.embedded_kafka and s.embedded_redis
    assert s.bootstrap_servers == "127.0.0.1:19092"
    assert s.effective_redis_url == "redis://127.0.0.1:16379/0"


def test_environment_is_read_once_and_typed() -> None:
    s = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "REDIS_URL": "rediss://scorer:hunter2@redis.internal:6380/1",
            "STREAMREC_PARTITIONS": "6",
            "STREAMREC_SNAPSHOT_KEY": "s3cret-s3cret-s3cret-s3cret-s3cret",
            "STREAMREC_INSECURE_DEV": "yes",
        }
    )
    assert not s.embedded_kafka and s.partitions == 6 and s.insecure_dev
    assert s.faust_broker_url() == "kafka://k1:9092,kafka://k2:9092"
    assert s.snapshot_key.get().startswith("s3cret")
    assert "s3cret" not in repr(s) and "hunter2" not in repr(s.describe())
    assert s.redacted_redis_url == "rediss://scorer:***@redis.internal:6380/1"
    client = s.redis_client()
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["username"] == "scorer" and kwargs["password"] == "hunter2"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("STREAMREC_PARTITIONS", "many"),
        ("STREAMREC_PARTITIONS", "0"),
        ("REDIS_URL", "http://x"),
        ("STREAMREC_INSECURE_DEV", "maybe"),
        ("STREAMREC_K", "5_0"),
        ("STREAMREC_K", "\uff15"),  # a fullwidth 5
        ("STREAMREC_K", " 5"),
        ("STREAMREC_K", "500"),  # more than any path serves
        ("STREAMREC_SNAPSHOT_KEY", "short"),
        ("STREAMREC_WEB_PORT", "99999"),
    ],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({var: value})


def test_secret_hides_itself() -> None:
    assert "abc" not in repr(Secret("abc")) and "abc" not in str(Secret("abc"))


def test_client_configs_built_in_one_place() -> None:
    s = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "b:1"})
    assert s.producer_config()["enable.idempotence"] is True
    consumer = s.consumer_config("g", **{"auto.offset.reset": "latest"})
    assert consumer["group.id"] == "g" and consumer["auto.offset.reset"] == "latest"
    assert consumer["enable.auto.commit"] is False


def test_to_env_round_trips_through_from_env() -> None:
    s = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "b:1",
            "STREAMREC_SNAPSHOT_KEY": "k" * 32,
            "STREAMREC_INSECURE_DEV": "1",
            "STREAMREC_PARTITIONS": "7",
            "STREAMREC_K": "4",
        }
    )
    # the child is pointed at the services the parent resolved, embedded ones included
    assert Settings.from_env(s.to_env()) == dataclasses.replace(
        s,
        redis_url=s.effective_redis_url,
        linger_ms=s.producer_linger_ms,
        fetch_max_wait_ms=s.fetch_wait_ms,
    )
    embedded = Settings.from_env({"STREAMREC_KAFKA_PORT": "1234"}).to_env()
    assert embedded["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:1234"  # the child sees the parent's


def test_the_embedded_broker_gets_longer_batches_and_fewer_fetches_unless_told() -> None:
    embedded = Settings.from_env({})
    kafka = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "b:1"})
    assert embedded.producer_config()["linger.ms"] == 100
    assert embedded.consumer_config("g")["fetch.wait.max.ms"] == 250
    assert kafka.producer_config()["linger.ms"] == 5
    assert kafka.consumer_config("g")["fetch.wait.max.ms"] == 100
    told = Settings.from_env({"STREAMREC_LINGER_MS": "7", "STREAMREC_FETCH_MAX_WAIT_MS": "9"})
    assert told.producer_config()["linger.ms"] == 7
    assert told.consumer_config("g")["fetch.wait.max.ms"] == 9
    # A child given the embedded broker's address keeps the embedded broker's values.
    child = Settings.from_env(embedded.to_env())
    assert child.producer_config()["linger.ms"] == 100
    assert child.consumer_config("g")["fetch.wait.max.ms"] == 250


def test_every_setting_is_in_the_configuration_table_and_nothing_else() -> None:
    import re
    from dataclasses import fields
    from pathlib import Path

    from streams.settings_doc import MEANINGS

    page = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    documented = re.findall(r"^\| `([A-Z_]+)`", page.read_text(), re.MULTILINE)
    variables = {f.metadata["env"] for f in fields(Settings)}
    assert variables - set(documented) == set(), "settings missing from docs/configuration.md"
    assert set(documented) - variables == set(), "documented, not read"
    assert len(documented) == len(set(documented)), "one row per variable"
    services = {f.metadata["env"] for f in fields(Settings) if "role" not in f.metadata}
    assert services <= set(MEANINGS) <= variables, "a meaning for each service setting"


def test_the_configuration_page_is_generated_from_the_settings() -> None:
    """docs/configuration.md is what `python -m streams.settings_doc` writes today."""
    from pathlib import Path

    from streams.settings_doc import render

    page = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert page.read_text() == render(), (
        "docs/configuration.md is out of date: "
        "python -m streams.settings_doc > docs/configuration.md"
    )


def test_an_unknown_scorer_engine_is_refused_naming_the_choices() -> None:
    assert Settings.from_env({"STREAMREC_SCORER_ENGINE": "kafka"}).scorer_engine == "kafka"
    with pytest.raises(ConfigurationError, match="STREAMREC_SCORER_ENGINE must be one of kafka"):
        Settings.from_env({"STREAMREC_SCORER_ENGINE": "spark"})
