"""Declaring projectors, their config, and finding them by name (pure)."""

from __future__ import annotations

import pytest

from outbox.errors import ConfigurationError, OutboxError
from projectors.config import ProjectorConfig
from projectors.errors import PartitionCountChangedError, ProjectorError, ProjectorNotFoundError
from projectors.projector import Projector, load_projector
from projectors.runtime import FIXED_SETTINGS, check_partition_counts, consumer_settings


def test_handlers_by_event_type() -> None:
    projector = Projector("p", ["t"])

    @projector.handles("a.done", "b.done")
    def one(event: object, conn: object) -> None: ...

    @projector.handles("c.done", batch=True)
    def many(events: object, conn: object) -> None: ...

    assert projector.event_types == {"a.done", "b.done", "c.done"}
    assert projector.handler("a.done") == projector.handler("b.done")
    handler = projector.handler("c.done")
    assert handler is not None and handler.batch and handler.function is many
    assert projector.handler("d.done") is None
    with pytest.raises(ConfigurationError, match=r"two handlers for 'a\.done'"):
        projector.handles("a.done")(one)


def test_names_topics_and_config_are_validated() -> None:
    with pytest.raises(ConfigurationError):
        Projector("bad name", ["t"])
    with pytest.raises(ConfigurationError, match="reads no topic"):
        Projector("p", [])
    for bad in ({"batch_size": 0}, {"max_retries": -1}, {"on_failure": "ignore"}, {"dead_letter_topic": ""}):
        with pytest.raises(ConfigurationError):
            ProjectorConfig(**bad)  # type: ignore[arg-type]
    assert issubclass(ProjectorError, OutboxError)


def test_backoff_doubles_up_to_the_cap() -> None:
    config = ProjectorConfig(retry_backoff=0.5, retry_backoff_max=3.0)
    assert [config.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_consumer_settings_keep_the_guarantees() -> None:
    projector = Projector(
        "p",
        ["t"],
        config=ProjectorConfig(
            instance_id="i-1", consumer_settings={"enable.auto.commit": True, "fetch.min.bytes": 5}
        ),
    )
    settings = consumer_settings(projector, "k:9092")
    assert settings["group.id"] == "outboxkit-projector-p"
    assert settings["group.instance.id"] == "i-1" and settings["fetch.min.bytes"] == 5
    assert {k: settings[k] for k in FIXED_SETTINGS} == FIXED_SETTINGS
    assert settings["isolation.level"] == "read_committed" and settings["enable.auto.commit"] is False


def test_partition_count_change_is_refused() -> None:
    check_partition_counts({"t": {3}}, {"t": 3, "new": 2}, "p")
    with pytest.raises(PartitionCountChangedError, match=r"topic 't' has 6 partitions.*\[3\].*[Rr]ebuild"):
        check_partition_counts({"t": {3}}, {"t": 6}, "p")


def test_load_projector_by_import_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITES_TOPIC", "sites-x")
    projector = load_projector("outboxkit.examples.sites.projection:from_environment")
    assert projector.topics == ("sites-x",) and projector.name == "site-summary"
    with pytest.raises(ProjectorNotFoundError, match=r"expected 'package\.module:attribute'"):
        load_projector("outboxkit.examples.sites.projection")
    with pytest.raises(ProjectorNotFoundError, match="cannot import"):
        load_projector("examples.nowhere:projector")
    with pytest.raises(ProjectorNotFoundError, match="not a Projector"):
        load_projector("outboxkit.examples.sites.projection:NAME")
