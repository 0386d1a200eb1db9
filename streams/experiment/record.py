"""What an experiment is: one JSON record per champion namespace, read by every scorer.

The champion is the namespace the deployment serves now; the challenger is another model
namespace with its own snapshots and its own trainer (``streamrec trainer --challenger``),
so both arms keep learning from the same stream under the trainer's exactly-once rules.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from online_model.errors import ConfigurationError

#: Judged views per arm before the gate may decide anything.
DEFAULT_MIN_JUDGED = 1000
#: Error rate of the always-valid comparison (two-sided; 0.05 = 95 % confidence).
DEFAULT_ALPHA = 0.05
#: Standard deviation of the mixing prior over the hit-rate difference (see statistics).
DEFAULT_TAU = 0.05


def new_id() -> str:
    """A fresh experiment id; it is also the salt of the arm assignment."""
    return secrets.token_hex(4)


def parse_challenger(text: str) -> tuple[str, dict[str, str]]:
    """``MODEL[:KEY=VALUE,...]`` -> (model spec, params); ``MODEL`` may be ``pkg.mod:Class``.

    >>> parse_challenger("covisit:window=3,recency=0.5")
    ('covisit', {'window': '3', 'recency': '0.5'})
    >>> parse_challenger("pkg.models:Mine")
    ('pkg.models:Mine', {})
    >>> parse_challenger("pkg.models:Mine:size=4")
    ('pkg.models:Mine', {'size': '4'})
    """
    parts = text.strip().split(":")
    cut = next((i for i in range(1, len(parts)) if "=" in parts[i]), len(parts))
    spec = ":".join(parts[:cut]).strip()
    if not spec:
        raise ConfigurationError(f"--challenger needs a model name, got {text!r}")
    params: dict[str, str] = {}
    for pair in ":".join(parts[cut:]).split(","):
        if not pair.strip():
            continue
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"challenger parameters must be KEY=VALUE, got {pair!r}")
        params[name.strip()] = value.strip()
    return spec, params


@dataclass(frozen=True)
class Experiment:
    """A running experiment (``state`` ``running``) or a finished one in the log."""

    id: str
    champion: str
    challenger: str
    share: float
    shadow: bool = False
    #: What the challenger's trainer builds when it has no snapshot (registry name or path).
    model: str = ""
    params: dict[str, str] = field(default_factory=dict)
    #: The champion version the challenger was copied from (``--version``), if any.
    from_version: int | None = None
    auto: bool = False
    min_judged: int = DEFAULT_MIN_JUDGED
    alpha: float = DEFAULT_ALPHA
    tau: float = DEFAULT_TAU
    started_at: float = field(default_factory=time.time)
    state: str = "running"
    #: Set when it ends: who decided what, when, and the figures it decided on.
    decision: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.share) and 0.0 < self.share <= 1.0):
            raise ConfigurationError(f"--share must be in (0, 1], got {self.share}")
        if not (0.0 < self.alpha < 1.0):
            raise ConfigurationError(f"alpha must be in (0, 1), got {self.alpha}")
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ConfigurationError(f"tau must be > 0, got {self.tau}")
        if self.min_judged < 1:
            raise ConfigurationError(f"--min-judged must be at least 1, got {self.min_judged}")
        if self.challenger == self.champion:
            raise ConfigurationError(
                f"the challenger namespace must differ from the champion's ({self.champion!r})"
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Experiment:
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
