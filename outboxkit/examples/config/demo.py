"""The config example end to end, for `outbox demo`: the owner writes site configuration through
the outbox (a relay must be running: the demo runs one), the pages service reads it per request."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from outboxkit.examples.config.owner import TOPIC, Base, create_topic, remove_site, set_config
from outboxkit.examples.config.pages import PagesService
from outboxkit.kafka.settings import KafkaSettings
from projectors.database import engine_for

Echo = Callable[[str], None]


def run_config_demo(database_url: str, kafka: KafkaSettings | str, echo: Echo = print) -> None:
    """Needs the toolkit's tables (Alembic); creates `site_config` and the compacted topic when missing."""
    create_topic(kafka)
    engine = engine_for(database_url)
    Base.metadata.create_all(engine)  # the owner's own table
    stamp = f"{time.time_ns() % 10**9:09d}"
    shop, blog = f"shop-{stamp}", f"blog-{stamp}"
    try:
        with Session(engine) as session, session.begin():
            set_config(session, shop, theme="dark", locale="de-CH", features=["cart"])
            set_config(session, blog, theme="light", locale="en-GB", features=[])
        echo(
            f"10. config owner: configured {shop} and {blog} (rows + KV entries of {TOPIC}, one transaction)"
        )
        pages = PagesService(kafka).start()
        try:
            loaded = pages.config.load_seconds or 0.0
            echo(f"11. pages service: loaded {TOPIC} in {loaded * 1000:.0f} ms ({len(pages.config)} sites)")
            wait_until(lambda: pages.handle(blog)[0] == 200, "the owner's configuration never arrived")
            echo(f"12. pages service: GET {shop} -> {pages.handle(shop)}")
            with Session(engine) as session, session.begin():
                set_config(session, shop, theme="neon", locale="de-CH", features=["cart", "wishlist"])
            started = time.monotonic()
            wait_until(lambda: "theme-neon" in pages.handle(shop)[1], "the change never arrived")
            echo(
                f"13. config owner: {shop} changed; the pages service served it"
                f" {(time.monotonic() - started) * 1000:.0f} ms later: {pages.handle(shop)}"
            )
            with Session(engine) as session, session.begin():
                set_config(session, blog, theme="broken", locale="xx", features=[])
                session.rollback()
            with Session(engine) as session, session.begin():
                remove_site(session, blog)
            wait_until(lambda: pages.handle(blog)[0] == 404, "the delete never arrived")
            assert "theme-light" not in pages.handle(blog)[1]
            echo(
                f"14. config owner: a change of {blog} rolled back (never seen),"
                f" then {blog} removed (a tombstone)"
            )
            echo(f"15. pages service: GET {blog} -> {pages.handle(blog)}")
        finally:
            pages.close()
    finally:
        engine.dispose()


def wait_until(done: Callable[[], bool], why: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"config demo: {why} within {timeout:.0f} s")
        time.sleep(0.01)
