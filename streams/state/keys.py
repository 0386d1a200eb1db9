"""The one Redis key layout of streamrec: everything lives under ``streamrec:<namespace>:``.

The namespace is ``STREAMREC_MODEL_NAME`` (one model's snapshots, its trainer's lease and
the histories its scorers keep). Every reader and writer of Redis builds its keys here, so
an ACL pattern (docs/redis-acl.md) or a ``SCAN`` covers exactly what one model owns.

>>> keys = ModelKeys("default")
>>> keys.snapshot(7), keys.current, keys.history("u42")
('streamrec:default:snap:7', 'streamrec:default:current', 'streamrec:default:hist:u42')
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "streamrec"


@dataclass(frozen=True)
class ModelKeys:
    """Redis keys and the pub/sub channel of one model namespace."""

    namespace: str

    @property
    def prefix(self) -> str:
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
        return f"{self.prefix}published"

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
    def history(self, user: str) -> str:
        return f"{self.prefix}hist:{user}"

    def served(self, user: str) -> str:
        return f"{self.prefix}served:{user}"

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
        return f"{self.prefix}shadow:{user}"
