"""On a Redis Cluster the keys one command, script or transaction touches must share a
slot; per-user keys must spread. Checked on every group streams/state/keys.py declares
(the operations take their keys from those groups)."""

from __future__ import annotations

from collections import Counter

import pytest
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from online_model.errors import ConfigurationError
from streams.state.keys import ModelKeys

NAMESPACES = ("default", "m-1a2b", "shop.v2")


def _slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def groups(keys: ModelKeys) -> dict[str, list[str]]:
    """Every multi-key operation's keys, with the keys its script builds itself."""
    challenger = f"{keys.namespace}.x1a2b3c4d"
    again = f"{challenger}.x5e6f7a8b"
    return {
        "publish": keys.publish_group(7),
        "set_current": keys.set_current_group(7),
        "prune": [*keys.prune_group(), keys.snapshot(3), keys.snapshot(4)],
        "batch_publish": [*keys.batch_publish_group(5), keys.batch_layer(2)],
        "served": keys.served_group(),
        "experiment_read": keys.experiment_read_group(),
        "switch to a challenger": keys.switch_group(challenger, 9, keys.namespace),
        "switch back": keys.switch_group(keys.namespace, 4, challenger),
        "switch to a challenger's challenger": keys.switch_group(again, 2, challenger),
        "finish": keys.finish_group(keys.namespace, challenger, "1a2b3c4d"),
        "finish after a promotion": keys.finish_group(challenger, again, "5e6f7a8b"),
    }


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_multi_key_operation_hashes_to_one_slot_on_a_cluster(namespace: str) -> None:
    keys = ModelKeys(namespace, cluster=True)
    for name, group in groups(keys).items():
        assert len(_slots(group)) == 1, (name, group)
    # Every namespace of the family (the model name's and its challengers') is one slot.
    family = {
        slot
        for ns in (namespace, f"{namespace}.x1", f"{namespace}.x1.x2", f"{namespace}:part-2")
        for slot in _slots([ModelKeys(ns, cluster=True).current])
    }
    assert len(family) == 1


def test_the_single_node_layout_keeps_its_names_and_would_not_do_on_a_cluster() -> None:
    keys = ModelKeys("default")
    assert keys.publish_group(7)[:2] == ["streamrec:default:snap:7", "streamrec:default:current"]
    assert keys.switch_group("default.xab", 3, "default")[0] == "streamrec:default:serving"
    # Untagged, the keys of one script land in several slots: CROSSSLOT on a cluster.
    assert len(_slots(keys.publish_group(7))) > 1
    assert len(_slots(keys.switch_group("default.xab", 3, "default"))) > 1


def test_user_keys_have_their_single_node_names_and_spread_by_user() -> None:
    keys = ModelKeys("default", cluster=True)
    plain = ModelKeys("default")
    assert keys.history("u42") == plain.history("u42") == "streamrec:default:hist:u42"
    assert keys.served("u42") == plain.served("u42")
    assert keys.shadow_served("u42") == plain.shadow_served("u42")
    assert keys.published_channel == plain.published_channel
    users = [f"u{i}" for i in range(3000)]
    thirds = (key_slot(keys.history(u).encode()) * 3 // REDIS_CLUSTER_HASH_SLOTS for u in users)
    slots = Counter(thirds)
    # Three masters holding a third of the slots each get about a third of the users.
    assert set(slots) == {0, 1, 2}
    assert min(slots.values()) > 800, slots


def test_cross_family_namespaces_do_not_share_a_slot_and_braces_are_refused() -> None:
    keys = ModelKeys("default", cluster=True)
    assert keys.same_slot("default.x1") and not keys.same_slot("other")
    assert ModelKeys("default").same_slot("other")  # one node: anything goes
    with pytest.raises(ConfigurationError, match="brace"):
        ModelKeys("a{b}", cluster=True)
