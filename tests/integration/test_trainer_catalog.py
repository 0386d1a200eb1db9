"""The trainer follows the catalog: deleted and expired pages leave its snapshots, hidden
pages stay (hiding is reversible), on the real broker and Redis."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from online_model.models.covisit import Covisitation
from streams.catalog.publish import publish_pages
from streams.io.producer import page_view
from streams.io.topics import ensure_topics
from streams.services.processes import wait_for
from streams.settings import Settings
from streams.state.snapshot_store import SnapshotStore
from streams.trainer.loop import Trainer
from streams.trainer.run import run_trainer
from tests.support.topics import produce_page_views

PAGES = ("gone", "hidden", "expiring", "kept", "p0", "p1", "p2")


def sessions(n_users: int = 20) -> list[dict[str, Any]]:
    """Every user views every page of PAGES, in a rotated order: each page has a row."""
    now = int(time.time() * 1000)
    views = []
    for u in range(n_users):
        for j in range(len(PAGES)):
            views.append(page_view(f"u{u}", PAGES[(u + j) % len(PAGES)], now + len(views)))
    return views


def served_pages(store: SnapshotStore) -> set[str]:
    snap = store.load_current()
    assert snap is not None and isinstance(snap.model, Covisitation)
    return set(snap.model.state_arrays().strings["pages"])


def test_deleted_and_expired_pages_leave_the_next_snapshot_hidden_ones_stay(
    settings: Settings, store: SnapshotStore
) -> None:
    ensure_topics(settings, [settings.topic_page_views, settings.topic_pages])
    publish_pages(settings, [{"page_id": page} for page in PAGES])
    views = sessions()
    assert produce_page_views(settings, views).delivered == len(views)
    fast = dataclasses.replace(settings, snapshot_interval=0.3)
    stop = threading.Event()
    ready: list[Trainer] = []
    thread = threading.Thread(
        target=run_trainer, args=(fast, "covisit", None, stop), kwargs={"on_ready": ready.append}
    )
    thread.start()
    try:
        wait_for(
            lambda: (
                (v := store.current_version()) is not None
                and store.read_meta(v).events_seen == len(views)
            ),
            60,
            "the trainer's snapshot of every view",
        )
        assert served_pages(store) == set(PAGES)
        before = store.current_version()
        publish_pages(
            settings,
            [
                ("gone", None),
                {"page_id": "hidden", "available": False},
                {"page_id": "expiring", "expires_at": int(time.time() * 1000) + 1_500},
            ],
        )
        # No page view arrives meanwhile: the catalog change alone makes a snapshot.
        wait_for(
            lambda: store.current_version() != before and "gone" not in served_pages(store),
            30,
            "a snapshot without the deleted page",
        )
        pages = served_pages(store)
        assert "hidden" in pages and "kept" in pages  # hidden is reversible: kept
        wait_for(lambda: "expiring" not in served_pages(store), 30, "the expired page leaves")
        snap = store.load_current()
        assert snap is not None
        recommended = {p for p, _ in snap.model.recommend("x", 10, ["kept", "p0"], {"kept", "p0"})}
        assert recommended == set(PAGES) - {"gone", "expiring", "kept", "p0"}
        assert snap.meta.events_seen == len(views)  # forgetting learns and skips nothing
    finally:
        stop.set()
        thread.join(30)
    assert ready and ready[0].catalog_sync is not None
    assert ready[0].catalog_sync.pages_forgotten == 2
