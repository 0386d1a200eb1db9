"""Bearer tokens of the scorer's REST API: ``STREAMREC_API_TOKENS`` read, new ones made.

``STREAMREC_API_TOKENS`` holds ``name:role:token`` entries separated by commas; settings
check them when read (a bad entry stops every command at start), and the scorer enforces
them (:mod:`streams.scorer.auth`). Only a token's SHA-256 digest is kept, and no error
shows a token. ``streamrec up`` and the demo hand out new tokens (:func:`new_token`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from enum import IntEnum

from streams.errors import ConfigurationError

#: Fewest characters of a token (``secrets.token_urlsafe(32)`` gives 43).
MIN_TOKEN_CHARS = 16


class Role(IntEnum):
    """What a token may do; a higher role may do everything a lower one may."""

    OPEN = 0  # no token needed (probes)
    READ = 1  # recommendations, metrics, the API description
    ADMIN = 2  # operator actions: promote, rollback, follow

    @classmethod
    def named(cls, text: str) -> Role:
        if text not in {"read", "admin"}:
            raise ValueError(text)
        return cls[text.upper()]


@dataclass(frozen=True)
class ApiToken:
    name: str
    role: Role
    digest: bytes = field(repr=False)  # SHA-256 of the token: what requests are compared to


def token_digest(token: str) -> bytes:
    """SHA-256 of a token: what is kept, and what a presented token is compared with."""
    return hashlib.sha256(token.encode()).digest()


def parse_api_tokens(text: str) -> tuple[ApiToken, ...]:
    """``"ops:admin:<token>,grafana:read:<token>"`` -> tokens; errors never show a token.

    >>> [(t.name, t.role.name) for t in parse_api_tokens("ops:admin:" + "a" * 16)]
    [('ops', 'ADMIN')]
    >>> try:
    ...     parse_api_tokens("ops:owner:" + "a" * 16)
    ... except ConfigurationError as exc:
    ...     print(exc)
    STREAMREC_API_TOKENS entry 1 (ops): role must be read or admin, got 'owner'
    """
    tokens: list[ApiToken] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    entries = [entry.strip() for entry in text.split(",")] if text.strip() else []
    for i, entry in enumerate(entries, 1):
        name, role_text, token = (part.strip() for part in [*entry.split(":", 2), "", ""][:3])
        where = f"STREAMREC_API_TOKENS entry {i}" + (f" ({name})" if name else "")
        if entry.count(":") < 2 or not name or not token:
            raise ConfigurationError(f"{where}: write it as name:role:token (role read or admin)")
        try:
            role = Role.named(role_text)
        except ValueError:
            raise ConfigurationError(
                f"{where}: role must be read or admin, got {role_text!r}"
            ) from None
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
            raise ConfigurationError(
                f"{where}: a token needs at least {MIN_TOKEN_CHARS} characters and no spaces, "
                "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        digest = token_digest(token)
        if name in names or digest in digests:
            raise ConfigurationError(f"{where}: names and tokens must each be unique")
        names.add(name)
        digests.add(digest)
        tokens.append(ApiToken(name, role, digest))
    return tuple(tokens)


def new_token() -> str:
    """A fresh random token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)
