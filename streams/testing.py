"""Public in-memory fakes for testing code that drives streamrec's processes.

:class:`ListEventSource` is a log the trainer (:class:`streams.trainer.loop.Trainer`) can
learn from without a broker: tests of a trainer's snapshot and resume behaviour, or of a
plug-in model inside the trainer loop, need no Kafka.

>>> source = ListEventSource([b"a", b"b", b"c"])
>>> source.assign({})
>>> [r.offset for r in source.poll(2, 0.0)], [r.value for r in source.poll(5, 0.0)]
([0, 1], [b'c'])
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from streams.records import LogRecord, Offsets


class ListEventSource:
    """An in-memory log of one partition; implements the trainer's ``EventSource``.

    ``commits`` keeps every offsets map the trainer committed, in order.
    """

    def __init__(self, values: Sequence[bytes | None], topic: str = "t") -> None:
        self.values = list(values)
        self.topic = topic
        self.position = 0
        self.commits: list[Offsets] = []

    def assign(self, offsets: Offsets) -> None:
        self.position = offsets.get(self.topic, {}).get(0, 0)

    def poll(self, max_records: int, timeout: float) -> list[LogRecord]:
        batch = self.values[self.position : self.position + max_records]
        records = [
            LogRecord(self.topic, 0, self.position + i, value) for i, value in enumerate(batch)
        ]
        self.position += len(batch)
        if not records and timeout > 0:
            time.sleep(timeout)  # as a consumer would wait for the next record
        return records

    def commit(self, offsets: Offsets) -> None:
        self.commits.append(offsets)

    def close(self) -> None:
        pass

    def partitions(self) -> dict[str, list[int]]:
        return {self.topic: [0]}
