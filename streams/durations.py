"""Durations as people type them: ``90s``, ``30m``, ``6h``, ``1d``, ``500ms``, ``1h30m``.

One parser for every option and setting whose name carries no unit (``--every``,
``--idle-timeout``, ``STREAMREC_SNAPSHOT_INTERVAL``...). A bare number is refused: ``6``
could mean seconds, minutes or hours, and a wrong guess runs a job every 6 seconds
instead of every 6 hours. Only ``0`` needs no unit. Settings whose name ends in ``_S`` or
``_MS`` keep plain numbers: their unit is in the name.
"""

from __future__ import annotations

import re

#: Seconds per unit, longest spelling first so ``ms`` is not read as ``m``.
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
EXAMPLES = "e.g. 90s, 30m, 6h, 1d, 1h30m or 500ms"

_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ``ValueError`` saying what to type instead.

    >>> parse_duration("6h"), parse_duration("1h30m"), parse_duration("500ms")
    (21600.0, 5400.0, 0.5)
    >>> parse_duration("6")
    Traceback (most recent call last):
    ...
    ValueError: give a unit, e.g. 6s, 6m or 6h
    """
    raw = text.strip().lower()
    if _NUMBER.fullmatch(raw):
        if float(raw) == 0:
            return 0.0
        raise ValueError(f"give a unit, e.g. {raw}s, {raw}m or {raw}h")
    parts = _PART.findall(raw)
    if not raw or "".join(n + u for n, u in parts) != raw:
        raise ValueError(f"not a duration ({EXAMPLES})")
    units = [u for _, u in parts]
    if len(set(units)) != len(units):
        raise ValueError(f"a unit appears twice ({EXAMPLES})")
    return sum(float(n) * UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """The shortest way to write ``seconds`` back as :func:`parse_duration` reads it.

    >>> format_duration(21600), format_duration(5400), format_duration(90), format_duration(0.5)
    ('6h', '1h30m', '1m30s', '500ms')
    """
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds:  # a fraction of a second: seconds only, as 2.5s
        return f"{seconds:g}s"
    out = []
    for unit in ("d", "h", "m", "s"):
        size = int(UNITS[unit])
        count, whole = divmod(whole, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
