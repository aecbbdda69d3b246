"""The pages service: renders a page per request with the site's configuration from a local
KVStore of `config.sites` (a dictionary lookup: no call to the owner, no cache to expire)."""

from __future__ import annotations

from outboxkit.examples.config.owner import TOPIC
from outboxkit.kafka.settings import KafkaSettings
from outboxkit.kv import KVStore, Store


class PagesService:
    """Serve pages once the site configuration is loaded (`start`)."""

    def __init__(self, kafka: KafkaSettings | str, store: Store | None = None) -> None:
        """`store`: where the configuration lives (memory by default; a DiskStore for large sets)."""
        self.config = KVStore(TOPIC, kafka=kafka, store=store)

    def start(self, timeout: float = 60.0) -> PagesService:
        self.config.start().wait_ready(timeout)
        return self

    def handle(self, site: str) -> tuple[int, str]:
        """One request: (status, body)."""
        config = self.config.get(site)
        if config is None:
            return 404, f"no site {site}"
        features = ", ".join(config["features"]) or "none"
        return 200, f'<html lang="{config["locale"]}" class="theme-{config["theme"]}"> features: {features}'

    def close(self) -> None:
        self.config.stop()
