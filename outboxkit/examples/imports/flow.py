"""The names of one imports deployment, from one prefix (tests give each run its own)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from outbox import Outbox, TopicRouter

AGGREGATE = "import_job"


@dataclass(frozen=True)
class Flow:
    prefix: str = "imports-demo"
    chunk: int = 100
    """Contacts imported per transaction (one status event each)."""
    chunk_delay: float = 0.0
    """Seconds a worker pauses per chunk (the demo slows down so people see the bar move)."""

    @classmethod
    def from_env(cls) -> Flow:
        return cls(
            prefix=os.environ.get("IMPORTS_PREFIX", cls.prefix),
            chunk=int(os.environ.get("IMPORTS_CHUNK", str(cls.chunk))),
            chunk_delay=float(os.environ.get("IMPORTS_CHUNK_DELAY", str(cls.chunk_delay))),
        )

    @property
    def topic_template(self) -> str:
        return f"{self.prefix}.{{aggregate_type}}"

    @property
    def jobs_topic(self) -> str:
        """Every event of a job (requested, progress, completed, failed), keyed by the job id."""
        return f"{self.prefix}.{AGGREGATE}"

    def name(self, component: str) -> str:
        return f"{self.prefix}-{component}"

    def outbox(self, source: str) -> Outbox:
        return Outbox(router=TopicRouter(self.topic_template), source=source)
