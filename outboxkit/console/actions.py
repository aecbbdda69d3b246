"""The console's only writes: requeue or discard quarantined events. Off unless the console is
started with actions allowed and a token; every request must carry it, every action is logged."""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from outbox.errors import ConfigurationError
from relay import quarantine

log = logging.getLogger("outboxkit.console")

MIN_TOKEN_LENGTH = 16


class ActionRefused(Exception):  # noqa: N818 - the HTTP status tells refused from failed
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class QuarantineActions:
    database_url: str
    token: str | None
    """None: the console is read-only."""

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                f"the console's action token has {len(self.token)} characters; give one of at least"
                f" {MIN_TOKEN_LENGTH} (e.g. `openssl rand -hex 16`) in OUTBOX_CONSOLE_TOKEN"
            )

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def run(self, action: str, ce_ids: Sequence[str], authorization: str | None, client: str) -> list[str]:
        """Requeue or discard `ce_ids`; the ce_ids it moved. ActionRefused when not allowed."""
        if self.token is None:
            raise ActionRefused(403, "this console is read-only: start it with --allow-actions and a token")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            log.warning("console action refused: bad token", extra={"action": action, "client": client})
            raise ActionRefused(401, "missing or wrong token (Authorization: Bearer <token>)")
        if action not in ("requeue", "discard"):
            raise ActionRefused(404, f"no action {action!r}: requeue or discard")
        if not ce_ids or not all(_is_uuid(c) for c in ce_ids):
            raise ActionRefused(400, "give the events' ce_ids (UUIDs) as a JSON list under 'ce_ids'")
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            done = (quarantine.requeue if action == "requeue" else quarantine.discard)(conn, list(ce_ids))
        log.info(
            "console action", extra={"action": action, "ce_ids": list(ce_ids), "done": done, "client": client}
        )
        return done


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
