"""Real logs shipped with the bench, read as worlds beside the synthetic ones.

``retail``  The Online Retail purchase log (UCI; CC0, provenance and preparation in
            ``bench/data/online-retail/SOURCE.md``): 386,326 purchases of 3,659 products
            by 4,334 customers over 373 days; all products of one invoice share a
            timestamp and keep their invoice order.

The files live in ``bench/data/`` (nothing is downloaded). A log is read in full at
``scale=1``; ``scale < 1`` keeps its first ``scale`` share of events and ``max_events``
its first ``max_events`` (time prefixes: a shorter history, the same traffic), so quick
runs stay quick.
"""

from __future__ import annotations

from pathlib import Path

from online_model.data.events_file import read_events

from .worlds import World

DATA = Path(__file__).parent / "data"

#: name -> (file under bench/data, what it is)
REAL_LOGS: dict[str, tuple[str, str]] = {
    "retail": ("online-retail/online_retail.csv.gz", "Online Retail purchases (real, UCI, CC0)"),
}


def real_log(name: str, scale: float = 1.0, max_events: int | None = None) -> World:
    """Events of real log ``name`` as a :class:`~bench.worlds.World` (string ids)."""
    path, what = REAL_LOGS[name]
    events = [(e.user_id, e.page_id, e.ts_ms) for e in read_events(DATA / path)]
    n = len(events) if scale >= 1 else int(len(events) * scale)
    if max_events is not None:
        n = min(n, max_events)
    # World types ids as the synthetic worlds' ints; a real log keeps its string ids.
    return World(name, what, events[:n])  # type: ignore[arg-type]
