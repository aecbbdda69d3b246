"""A projector whose handler fails for good from one offset on: `FAILING_TOPIC`, `FAILING_NAME`,
`FAILING_FROM` (the first offset that fails). Long back-offs, so a test sees a stop during one."""

from __future__ import annotations

import os
from typing import Any

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


def poisoned() -> Projector:
    """The sites projector (`SITES_TOPIC`, `SITES_PROJECTOR`), whose handlers fail for every event
    of the site named by `POISON_SITE` while it is set (unset it: the handlers are fixed)."""
    from outboxkit.examples.sites.projection import build_projector

    config = ProjectorConfig(max_retries=1, retry_backoff=0.01)
    inner = build_projector(os.environ["SITES_TOPIC"], name=os.environ["SITES_PROJECTOR"], config=config)
    outer = Projector(inner.name, inner.topics, metadata=inner.metadata, config=config)
    for event_type in sorted(inner.event_types):
        handler = inner.handler(event_type)
        assert handler is not None and not handler.batch

        def poisonable(event: ReceivedEvent, conn: Connection, apply: Any = handler.function) -> None:
            if event.subject == os.environ.get("POISON_SITE"):
                raise RuntimeError(f"poison: site {event.subject}")
            apply(event, conn)

        outer.handles(event_type)(poisonable)
    return outer
