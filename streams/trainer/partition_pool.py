"""The partition trainers one trainer shard runs (:mod:`streams.trainer.shards`).

Each partition is learned by an ordinary :class:`~streams.trainer.loop.Trainer` in a
thread of its own, with a stop of its own: started when the shard is given the
partition, stopped (a last snapshot, the partition's lease released) when it goes to
another shard, or when the shard stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from streams.errors import LeaseLost
from streams.trainer.loop import Published, Trainer

log = logging.getLogger(__name__)


class PartitionPool:
    """The partition trainers this shard runs, each in a thread with its own stop: started
    when the shard is given a partition, stopped (a last snapshot, the lease released)
    when the partition goes to another shard."""

    def __init__(self, make: Callable[[int], Trainer], stop: threading.Event) -> None:
        self.make = make
        self.stop = stop
        self.trainers: dict[int, Trainer] = {}
        self.ready: set[int] = set()
        self.errors: list[BaseException] = []
        self.events_done = 0  # learned by trainers that stopped
        self._running: dict[int, tuple[Trainer, threading.Event, threading.Thread]] = {}

    @property
    def owned(self) -> set[int]:
        return set(self._running)

    @property
    def events_learned(self) -> int:
        return self.events_done + sum(t.events_learned for t, _, _ in self._running.values())

    def reconcile(self, owned: set[int]) -> None:
        """Start the trainers of partitions newly ``owned``; stop the others."""
        self._reap()
        for partition in sorted(set(self._running) - owned):
            _, stop, _ = self._running[partition]
            stop.set()  # it publishes, releases the partition's lease and ends
            log.info("trainer shard gives up partition=%d", partition)
        for partition in sorted(owned - set(self._running)):
            trainer = self.trainers[partition] = self.make(partition)
            stop = threading.Event()
            thread = threading.Thread(
                target=self._learn,
                args=(partition, trainer, stop),
                daemon=True,
                name=f"trainer-p{partition}",
            )
            self._running[partition] = (trainer, stop, thread)
            thread.start()
            log.info("trainer shard takes partition=%d", partition)

    def _learn(self, partition: int, trainer: Trainer, stop: threading.Event) -> None:
        either = _Either(self.stop, stop)
        try:
            trainer.run(either, on_ready=lambda _t: self.ready.add(partition))
        except LeaseLost as exc:
            # Another shard learns this partition now (this one paused past its lease):
            # drop it; if it is still ours, the next reconcile waits for the lease and
            # resumes from the newest snapshot, learning nothing twice.
            log.warning(
                "partition trainer lost its lease partition=%d error=%r", partition, str(exc)
            )
            stop.set()  # reaped; started again if the partition is still this shard's
        except BaseException as exc:
            self.errors.append(exc)
            log.exception("partition trainer failed model_name=%s", trainer.store.model_name)
            self.stop.set()

    def _reap(self) -> None:
        for partition, (trainer, stop, thread) in list(self._running.items()):
            if stop.is_set() and not thread.is_alive():
                del self._running[partition]
                self.ready.discard(partition)
                self.events_done += trainer.events_learned

    def published(self, partition: int) -> Published | None:
        """What this shard's trainer of ``partition`` published last (None: the
        partition is not learned here, or its state is not kept)."""
        running = self._running.get(partition)
        return None if running is None else running[0].published

    def models(self) -> list[Any]:
        """The models the running partition trainers learn now."""
        return [trainer.model for trainer, _, _ in self._running.values()]

    def behind(self) -> bool:
        """Whether a running partition trainer is catching up with the log."""
        return any(t.catching_up for t, _, _ in self._running.values())

    def all_ready(self) -> bool:
        return set(self._running) <= self.ready

    def join(self) -> None:
        """Wait for every trainer's last publish (after the shard's stop was set)."""
        for _, _, thread in list(self._running.values()):
            thread.join()
        for partition in list(self._running):
            self._running[partition][1].set()
        self._reap()


class _Either(threading.Event):
    """Set when either of two events is: the shard stops, or the partition moves."""

    def __init__(self, a: threading.Event, b: threading.Event) -> None:
        super().__init__()
        self._a, self._b = a, b

    def is_set(self) -> bool:
        return self._a.is_set() or self._b.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        # Trainers wait in short steps (lease retries): poll both.
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                break
            self._b.wait(left)
        return self.is_set()
