"""An in-memory log for trainers run in the test process (the EventSource protocol)."""

from __future__ import annotations

import time

from streams.trainer.loop import RawEvent


class ListSource:
    """An in-memory log: one topic, one partition."""

    def __init__(self, values: list[bytes]) -> None:
        self.values = values
        self.position = 0
        self.commits: list[dict[str, dict[int, int]]] = []

    def assign(self, offsets: dict[str, dict[int, int]]) -> None:
        self.position = offsets.get("t", {}).get(0, 0)

    def poll(self, max_records: int, timeout: float) -> list[RawEvent]:
        batch = self.values[self.position : self.position + max_records]
        events = [RawEvent("t", 0, self.position + i, v) for i, v in enumerate(batch)]
        self.position += len(batch)
        if not events:
            time.sleep(timeout)
        return events

    def commit(self, offsets: dict[str, dict[int, int]]) -> None:
        self.commits.append(offsets)

    def close(self) -> None:
        pass

    def partitions(self) -> dict[str, list[int]]:
        return {"t": [0]}
