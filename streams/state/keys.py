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

    # -- the trainer's lease (streams.state.lease) --------------------------------------
    @property
    def trainer_lease(self) -> str:
        return f"{self.prefix}trainer-lease"

    # -- per-user state (streams.state.history) -----------------------------------------
    def history(self, user: str) -> str:
        return f"{self.prefix}hist:{user}"

    def served(self, user: str) -> str:
        return f"{self.prefix}served:{user}"
