"""Which arm of an experiment a user is in: a pure, stable function of the user id.

The arm is a salted hash of ``user_id``: every scorer, every restart and every replay
agrees on it without sharing state, so one user always sees one arm. The salt is the
experiment's id, so a new experiment reshuffles users and no user is in the challenger
arm of every experiment.

>>> arm_of("u42", "a1b2", 0.5) == arm_of("u42", "a1b2", 0.5)
True
>>> arm_of("u42", "a1b2", 0.0), arm_of("u42", "a1b2", 1.0)
('champion', 'challenger')
"""

from __future__ import annotations

import hashlib

CHAMPION = "champion"
CHALLENGER = "challenger"
ARMS = (CHAMPION, CHALLENGER)

_SCALE = float(1 << 64)


def bucket(user: str, salt: str) -> float:
    """A number in [0, 1), uniform over users and fixed for ``(user, salt)``.

    BLAKE2b rather than Python's ``hash``: that one is randomised per process.
    """
    digest = hashlib.blake2b(user.encode(), key=salt.encode()[:64], digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def arm_of(user: str, salt: str, share: float) -> str:
    """``challenger`` for a ``share`` of users, ``champion`` for the rest."""
    return CHALLENGER if bucket(user, salt) < share else CHAMPION
