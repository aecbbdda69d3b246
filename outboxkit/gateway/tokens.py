"""Connection tokens: JWT signed with HS256 (PyJWT), naming the user (`sub`) and when they expire.

The app that serves the page issues them (`issue_token`); the gateway only verifies. Optional claim
`channels`: further channels the token grants beyond the user's own (e.g. a shared dashboard).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from outbox.errors import OutboxError

ALGORITHM = "HS256"


class TokenRefusedError(OutboxError):
    """A token that is forged, malformed or expired; `expired` says which kind."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Grant:
    """What a verified token allows."""

    user: str
    expires_at: float
    """Unix time after which the connection is closed unless a new token is sent (`refresh`)."""
    channels: frozenset[str] = frozenset()
    """Channels granted beyond the user's own."""


def issue_token(
    secret: str, user: str, *, ttl: float = 3600.0, channels: Iterable[str] = (), now: float | None = None
) -> str:
    """A token for `user`, valid for `ttl` seconds (what the page's app hands its browser)."""
    issued = time.time() if now is None else now
    claims: dict[str, object] = {"sub": user, "iat": int(issued), "exp": int(issued + ttl)}
    if channels:
        claims["channels"] = sorted(channels)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: object) -> Grant:
    """The grant of a token; TokenRefusedError when its signature, claims or expiry are wrong."""
    if not isinstance(token, str) or not token:
        raise TokenRefusedError('no token: send {"type": "connect", "token": "<JWT>"}')
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError as err:
        raise TokenRefusedError("the token has expired: ask the app for a new one", expired=True) from err
    except jwt.InvalidTokenError as err:
        raise TokenRefusedError(f"the token is not valid: {err}") from err
    user, channels = claims["sub"], claims.get("channels", [])
    if not isinstance(user, str) or not user:
        raise TokenRefusedError("the token's `sub` must name the user")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise TokenRefusedError("the token's `channels` must be a list of channel names")
    return Grant(user=user, expires_at=float(claims["exp"]), channels=frozenset(channels))
