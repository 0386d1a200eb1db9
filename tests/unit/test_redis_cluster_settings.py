"""STREAMREC_REDIS_CLUSTER: one setting, refused with one line when it cannot work."""

from __future__ import annotations

import pytest

from online_model.errors import ConfigurationError
from streams.settings import Settings


def test_the_cluster_setting_is_read_and_off_by_default() -> None:
    assert Settings.from_env({}).redis_cluster is False
    on = Settings.from_env({"STREAMREC_REDIS_CLUSTER": "1", "REDIS_URL": "redis://10.0.0.1:7000"})
    assert on.redis_cluster is True
    assert on.to_env()["STREAMREC_REDIS_CLUSTER"] == "1"  # children see a cluster too


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (None, "STREAMREC_REDIS_CLUSTER needs REDIS_URL"),
        ("unix:///tmp/redis.sock", "over TCP"),
        ("redis://10.0.0.1:7000/3", "only database 0"),
    ],
)
def test_a_cluster_it_cannot_reach_that_way_is_one_error(url: str | None, error: str) -> None:
    env = {"STREAMREC_REDIS_CLUSTER": "1", **({"REDIS_URL": url} if url else {})}
    with pytest.raises(ConfigurationError, match=error):
        Settings.from_env(env)


def test_a_cluster_whose_slot_is_down_is_an_outage_not_a_crash() -> None:
    """CLUSTERDOWN and TRYAGAIN (a master down or a slot moving) are ridden out like a
    lost connection: the trainer keeps learning, the scorer degrades."""
    import redis

    from streams.errors import StoreUnavailable
    from streams.state.connection import redis_error_line, redis_errors

    @redis_errors
    def call(exc: Exception) -> None:
        raise exc

    for exc in (
        redis.exceptions.ClusterDownError("The cluster is down"),
        redis.exceptions.TryAgainError("TRYAGAIN"),
        redis.exceptions.SlotNotCoveredError("slot 7 is not covered"),
    ):
        with pytest.raises(StoreUnavailable, match="redis unavailable"):
            call(exc)
    line = redis_error_line(redis.exceptions.RedisClusterException("no node answered"))
    assert line == "redis cluster unavailable: no node answered"


def test_a_cluster_url_may_name_several_nodes_and_hides_its_password() -> None:
    env = {"STREAMREC_REDIS_CLUSTER": "1", "REDIS_URL": "redis://scorer:s3cret@a:7000,b:7001/0"}
    s = Settings.from_env(env)
    assert s.redacted_redis_url == "redis://scorer:***@a:7000,b:7001/0"
    assert "s3cret" not in repr(s.describe())
    with pytest.raises(ConfigurationError, match="only a Redis Cluster takes"):
        Settings.from_env({"REDIS_URL": "redis://a:7000,b:7001"})


def test_cluster_clients_seed_from_every_named_node_and_fail_fast() -> None:
    """The asyncio client connects on its first command, so it can be looked at here;
    the synchronous one is made with the same options (streams/state/cluster_client.py)."""
    from streams.state.cluster_client import RETRIES, async_cluster_client

    client = async_cluster_client("redis://scorer:pw@127.0.0.1:7000,127.0.0.2:7001/0")
    assert sorted(client.nodes_manager.startup_nodes) == ["127.0.0.1:7000", "127.0.0.2:7001"]
    assert client.connection_kwargs["username"] == "scorer"
    # Not redis-py's ten retries up to a second apart: a lost master's users degrade at once.
    assert client.retry.get_retries() == RETRIES == 2
