"""Forward exponential decay: old evidence fades by scaling new evidence up.

Decaying every stored count on every event would cost O(state) per event. Instead each
new event is weighted ``2 ** (t / half_life)``; relative weights are then exactly those of
classic exponential decay, and ranking by stored value ranks by decayed value. When the
exponent grows too large, the owner rescales its state once (amortised O(1)).
"""

from __future__ import annotations

import logging
import math
from typing import Any

logger = logging.getLogger(__name__)

#: Rescale stored weights once new weights exceed ``2 ** _MAX_EXPONENT``.
_MAX_EXPONENT = 256.0


class ForwardDecay:
    """A clock that turns each event into a forward-decayed weight.

    Parameters
    ----------
    half_life
        Half-life in events (``unit="events"``) or seconds (``unit="seconds"``);
        ``None`` or ``0`` disables decay (every event weighs 1).
    unit
        ``"events"`` counts learned events; ``"seconds"`` reads ``x["ts"]`` (epoch ms)
        and falls back to the event count when an event carries no timestamp.

    Examples
    --------
    >>> clock = ForwardDecay(half_life=2, unit="events")
    >>> [clock.tick()[0] for _ in range(3)]  # doctest: +ELLIPSIS
    [1.0, 1.414..., 2.0]
    """

    def __init__(self, half_life: float | None = None, unit: str = "events") -> None:
        if unit not in ("events", "seconds"):
            raise ValueError(f"unit must be 'events' or 'seconds', got {unit!r}")
        self.half_life = half_life
        self.unit = unit
        self._n = 0
        self._origin: float | None = None  # time that maps to exponent 0

    def tick(self, x: dict[str, Any] | None = None) -> tuple[float, float | None]:
        """Advance the clock by one event.

        Returns
        -------
        (weight, rescale)
            ``weight`` for the new event; ``rescale`` is ``None`` or a factor the owner
            must multiply all stored weights by (already applied to ``weight``).
        """
        self._n += 1
        if not self.half_life:
            return 1.0, None
        if self.unit == "seconds" and x is not None and x.get("ts") is not None:
            t = float(x["ts"]) / 1000.0
        else:
            t = float(self._n - 1)
        if self._origin is None:
            self._origin = t
        exponent = (t - self._origin) / self.half_life
        rescale = None
        if exponent > _MAX_EXPONENT:
            # Move the origin forward; stored weights shrink by the same factor.
            shift = exponent - 1.0
            self._origin += shift * self.half_life
            rescale = math.pow(2.0, -shift)
            exponent -= shift
            logger.debug("decay rescale shift=%s", shift)
        return math.pow(2.0, exponent), rescale

    def state(self) -> dict[str, Any]:
        """The clock's position as JSON values (for pickle-free snapshots)."""
        return {"n": self._n, "origin": self._origin}

    def restore(self, state: dict[str, Any]) -> None:
        """Move the clock to a position returned by :meth:`state`."""
        self._n = int(state["n"])
        origin = state["origin"]
        self._origin = None if origin is None else float(origin)
