"""A projector whose handler fails for good from one offset on: `FAILING_TOPIC`, `FAILING_NAME`,
`FAILING_FROM` (the first offset that fails). Long back-offs, so a test sees a stop during one."""

from __future__ import annotations

import os

from sqlalchemy import Connection

from outboxkit.kafka.records import ReceivedEvent
from projectors.config import ProjectorConfig
from projectors.projector import Projector


def from_environment() -> Projector:
    fail_from = int(os.environ["FAILING_FROM"])
    config = ProjectorConfig(max_retries=3, retry_backoff=5.0, retry_backoff_max=5.0)
    projector = Projector(os.environ["FAILING_NAME"], [os.environ["FAILING_TOPIC"]], config=config)

    @projector.handles("site.created", "site.owner_changed", "app.installed", "app.uninstalled")
    def apply(event: ReceivedEvent, conn: Connection) -> None:
        if event.offset >= fail_from:
            raise RuntimeError(f"handler broken from offset {fail_from}")

    return projector
