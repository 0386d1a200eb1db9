"""Typed constructors of the parts every process builds from :class:`Settings`.

The scorer, the trainer, replay, batch scoring and the operator commands all need the
same snapshot store, signing key and Redis stores; they get them here, built one way.
The Avro codecs are built in :mod:`streams.io.codec`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from online_model.persist.snapshot import signing_key
from streams.settings import Settings
from streams.state.batch_layers import BatchLayerStore
from streams.state.serving import Serving
from streams.state.snapshot_store import SnapshotStore


def snapshot_signing_key(settings: Settings) -> bytes:
    """The HMAC key of snapshots (refuses to run without one unless insecure dev mode)."""
    return signing_key(settings.snapshot_key.get(), settings.insecure_dev)


def snapshot_store(settings: Settings, client: Any | None = None) -> SnapshotStore:
    """The Redis snapshot store of ``settings.model_name`` (a sync client by default)."""
    redis = client if client is not None else settings.redis_client(socket_timeout=5.0)
    return SnapshotStore(
        redis,
        settings.model_name,
        snapshot_signing_key(settings),
        keep=settings.snapshot_keep,
        allow_pickle=settings.allow_pickle,
    )


def store_for(settings: Settings, client: Any | None = None) -> Callable[[str], SnapshotStore]:
    """namespace -> its snapshot store, all on one client (what is served may be another
    namespace than ``settings.model_name`` after a promotion)."""
    redis = client if client is not None else settings.redis_client(socket_timeout=5.0)

    def store(namespace: str) -> SnapshotStore:
        return snapshot_store(dataclasses.replace(settings, model_name=namespace), redis)

    return store


def serving(settings: Settings, client: Any | None = None) -> Serving:
    """What scorers of ``settings.model_name`` serve (:mod:`streams.state.serving`)."""
    redis = client if client is not None else settings.redis_client(socket_timeout=5.0)
    return Serving(redis, settings.model_name)


def batch_layer_store(settings: Settings, client: Any | None = None) -> BatchLayerStore:
    """The Redis store of ``settings.model_name``'s batch layers (a hybrid's item-item
    layer, published by ``streamrec retrain --model hybrid``), signed with the snapshot key."""
    redis = client if client is not None else settings.redis_client(socket_timeout=5.0)
    return BatchLayerStore(redis, settings.model_name, snapshot_signing_key(settings))
