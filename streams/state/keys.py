"""The one Redis key layout of streamrec: everything lives under ``streamrec:<namespace>:``.

The namespace is ``STREAMREC_MODEL_NAME`` (one model's snapshots, its trainer's lease and
the histories its scorers keep). Every reader and writer of Redis builds its keys here, so
an ACL pattern (docs/redis-acl.md) or a ``SCAN`` covers exactly what one model owns.

>>> keys = ModelKeys("default")
>>> keys.snapshot(7), keys.current, keys.history("u42")
('streamrec:default:snap:7', 'streamrec:default:current', 'streamrec:default:hist:u42')

On a Redis Cluster (``STREAMREC_REDIS_CLUSTER``) the keys a script or a transaction
touches together must hash to one slot, so every key but the per-user ones carries the
hash tag of the model *family*: the namespace up to its first ``.`` or ``:``, which a model
name's challengers (``<model>.x<id>``), theirs and its trainer shards' partitions share.
The per-user keys keep their single-node names, which have no tag, so histories spread
over the cluster by user (docs/redis-cluster.md):

>>> keys = ModelKeys("default.xab", cluster=True)
>>> keys.current, keys.history("u42")
('streamrec:{default}.xab:current', 'streamrec:default.xab:hist:u42')
>>> keys.published_channel
'streamrec:default.xab:published'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from online_model.errors import ConfigurationError

ROOT = "streamrec"


def family(namespace: str) -> str:
    """The model family of ``namespace``: what a Redis Cluster hash tag names. It ends at
    the first ``.`` (a challenger, ``<model>.x<id>``) or ``:`` (a trainer shard's
    partition, ``<model>:part-<p>``).

    >>> family("default"), family("default.x1a2b.x3c4d"), family("default:part-2")
    ('default', 'default', 'default')
    """
    return re.split(r"[.:]", namespace, maxsplit=1)[0]


@dataclass(frozen=True)
class ModelKeys:
    """Redis keys and the pub/sub channel of one model namespace.

    ``cluster`` selects the Redis Cluster layout (hash-tagged by :func:`family`); the
    single-node layout is the default and the names it always had.
    """

    namespace: str
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster and ("{" in self.namespace or "}" in self.namespace):
            raise ConfigurationError(
                f"model namespace {self.namespace!r} holds a brace; on a Redis Cluster "
                "braces are hash tags, so a model name must not contain { or }"
            )

    def of(self, namespace: str) -> ModelKeys:
        """The keys of another namespace, in the same layout."""
        return ModelKeys(namespace, self.cluster)

    @property
    def tag(self) -> str:
        """The hash tag every non-user key of this namespace carries on a cluster."""
        return f"{{{family(self.namespace)}}}"

    def same_slot(self, namespace: str) -> bool:
        """Whether ``namespace``'s keys hash with this one's (always, on one node)."""
        return not self.cluster or family(namespace) == family(self.namespace)

    @property
    def prefix(self) -> str:
        if self.cluster:
            rest = self.namespace[len(family(self.namespace)) :]
            return f"{ROOT}:{self.tag}{rest}:"
        return self.plain_prefix

    @property
    def plain_prefix(self) -> str:
        """``streamrec:<namespace>:``, untagged: the per-user keys and the channel."""
        return f"{ROOT}:{self.namespace}:"

    # -- snapshots (streams.state.snapshot_store) ---------------------------------------
    @property
    def snapshot_prefix(self) -> str:
        return f"{self.prefix}snap:"

    def snapshot(self, version: int | str) -> str:
        return f"{self.snapshot_prefix}{version}"

    @property
    def version_seq(self) -> str:
        return f"{self.prefix}version_seq"

    @property
    def current(self) -> str:
        return f"{self.prefix}current"

    @property
    def pinned(self) -> str:
        return f"{self.prefix}pinned"

    @property
    def versions(self) -> str:
        return f"{self.prefix}versions"

    @property
    def origins(self) -> str:
        return f"{self.prefix}origins"

    @property
    def delta_links(self) -> str:
        return f"{self.prefix}deltas"

    @property
    def published_channel(self) -> str:
        # A channel is not a key (PUBLISH reaches every node): the same name in both layouts.
        return f"{self.plain_prefix}published"

    # -- batch layers of a hybrid (streams.state.batch_layers) ---------------------------
    @property
    def batch_layer_prefix(self) -> str:
        return f"{self.prefix}batch:"

    def batch_layer(self, version: int | str) -> str:
        return f"{self.batch_layer_prefix}{version}"

    @property
    def batch_layer_seq(self) -> str:
        return f"{self.prefix}batch_seq"

    @property
    def batch_layer_newest(self) -> str:
        """The newest batch layer's version: what the hybrid's trainer swaps in."""
        return f"{self.prefix}batch_newest"

    @property
    def batch_layer_versions(self) -> str:
        return f"{self.prefix}batch_versions"

    # -- the trainer's lease (streams.state.lease) --------------------------------------
    @property
    def trainer_lease(self) -> str:
        return f"{self.prefix}trainer-lease"

    @property
    def trainer_status(self) -> str:
        """The running trainer's status record (:mod:`streams.state.trainer_status`)."""
        return f"{self.prefix}trainer-status"

    @property
    def trainer_shards(self) -> str:
        """The live trainer shards of this model that share its partitions by themselves
        (sorted set: shard token -> expiry in epoch ms; :mod:`streams.state.shard_members`)."""
        return f"{self.prefix}trainer-shards"

    # -- per-user state (streams.state.history) -----------------------------------------
    # Untagged in both layouts: on a cluster each user's keys hash on their whole name, so
    # histories spread by user; a batch reads and writes them in a non-transactional
    # pipeline, which a cluster client splits by node.
    def history(self, user: str) -> str:
        return f"{self.plain_prefix}hist:{user}"

    def served(self, user: str) -> str:
        return f"{self.plain_prefix}served:{user}"

    # -- live experiments on this namespace (streams.experiment) ------------------------
    @property
    def experiment(self) -> str:
        """The running experiment whose champion this namespace serves (JSON)."""
        return f"{self.prefix}experiment"

    def experiment_counts(self, experiment_id: str) -> str:
        """Per-arm judged views of one experiment, summed over every scorer (hash)."""
        return f"{self.prefix}experiment:{experiment_id}:counts"

    @property
    def experiment_log(self) -> str:
        """Finished experiments with their decision and figures, newest first (list)."""
        return f"{self.prefix}experiments"

    @property
    def experiment_results(self) -> str:
        """Outcomes of finished experiments per version that took part (hash
        ``<version>:<experiment id>`` -> JSON; streams.experiment.results)."""
        return f"{self.prefix}experiment-results"

    @property
    def serving(self) -> str:
        """The namespace whose snapshots this namespace's scorers serve, once a challenger
        was promoted (absent: this namespace's own)."""
        return f"{self.prefix}serving"

    @property
    def serving_log(self) -> str:
        """Every change of what this namespace's scorers serve, newest first (list of
        JSON; streams.state.serving)."""
        return f"{self.prefix}serving-log"

    def shadow_served(self, user: str) -> str:
        """The challenger's list computed for a user in shadow mode (never sent)."""
        return f"{self.plain_prefix}shadow:{user}"

    # -- keys one command, script or transaction touches together -----------------------
    # On a Redis Cluster each group must hash to one slot (tests/unit/test_cluster_slots.py
    # checks every one); the code of each operation takes its keys from here.
    def publish_group(self, version: int | str) -> list[str]:
        """The snapshot publish script's KEYS (streams.state.snapshot_store)."""
        return [
            self.snapshot(version),
            self.current,
            self.pinned,
            self.versions,
            self.origins,
            self.delta_links,
        ]

    def set_current_group(self, version: int | str) -> list[str]:
        """The script moving ``current`` (promote, rollback, follow within a namespace)."""
        return [self.snapshot(version), self.current, self.pinned]

    def prune_group(self) -> list[str]:
        """The prune script's KEYS; it also deletes ``snap:<v>`` keys it builds from
        :attr:`snapshot_prefix`."""
        return [
            self.current,
            self.versions,
            self.origins,
            self.delta_links,
            self.experiment_results,
        ]

    def batch_publish_group(self, version: int | str) -> list[str]:
        """The batch layer publish script's KEYS; it also deletes ``batch:<v>`` keys it
        builds from :attr:`batch_layer_prefix` (streams.state.batch_layers)."""
        return [self.batch_layer(version), self.batch_layer_newest, self.batch_layer_versions]

    def served_group(self) -> list[str]:
        """What one MGET reads of the namespace served: ``current`` and ``pinned``."""
        return [self.current, self.pinned]

    def experiment_read_group(self) -> list[str]:
        """What scorers MGET every poll: ``serving`` and ``experiment``."""
        return [self.serving, self.experiment]

    def switch_group(self, target: str, version: int | str, left: str) -> list[str]:
        """The serving switch script's KEYS, this namespace being the model name's:
        its pointer and log, the ``target`` namespace's snapshot, ``current`` and pin, the
        pin of the namespace ``left`` behind (streams.state.serving)."""
        to, before = self.of(target), self.of(left)
        return [
            self.serving,
            to.snapshot(version),
            to.current,
            to.pinned,
            self.serving_log,
            before.pinned,
        ]

    def finish_group(self, champion: str, challenger: str, experiment_id: str) -> list[str]:
        """Every key the transaction ending an experiment watches or writes, this
        namespace being the model name's (streams.experiment.store)."""
        arms = [self.of(champion), self.of(challenger)]
        return [
            self.experiment,
            *(arm.current for arm in arms),
            self.experiment_log,
            self.experiment_counts(experiment_id),
            self.serving,
            arms[0].pinned,
            self.serving_log,
            *(arm.experiment_results for arm in arms),
        ]
