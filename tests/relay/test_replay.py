"""`outbox replay`: retained events are published again, same envelope and ce_id, in order."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import CliRunner

from outboxkit.cli import main
from tests.relay.conftest import RelayProcess
from tests.relay.events import by_key, engine_for, outbox_for, write_numbered
from tests.services import consume_all

KEEP = {"OUTBOX_RETENTION": "keep"}


def test_replay_republishes_one_aggregate_with_the_same_ids(
    relay_factory: Callable[..., RelayProcess],
    clean_outbox: str,
    bootstrap_servers: str,
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic("replay")
    write_numbered(engine_for(clean_outbox), outbox_for(topic), ["a", "b"], 5)
    relay = relay_factory(env_extra=KEEP)
    first = consume_all(bootstrap_servers, topic, 10, timeout=20)
    assert by_key(first) == {"a": list(range(5)), "b": list(range(5))}

    env = {"OUTBOX_DATABASE_URL": clean_outbox, **KEEP}
    result = CliRunner().invoke(main, ["replay", "--aggregate", "test:a", "--timeout", "30"], env=env)
    assert result.exit_code == 0, result.output
    assert "5 event(s) queued" in result.output

    records = consume_all(bootstrap_servers, topic, 15, timeout=20)
    assert by_key(records) == {"a": list(range(5)) * 2, "b": list(range(5))}
    ids = [dict(m.headers() or [])["ce_id"] for m in records if m.key() == b"a"]
    assert ids[:5] == ids[5:], "a replay carries the original ce_ids (consumers dedupe on them)"
    assert relay.terminate() == 0


def test_replay_needs_a_selection_and_says_when_nothing_is_retained(clean_outbox: str) -> None:
    env = {"OUTBOX_DATABASE_URL": clean_outbox}
    refused = CliRunner().invoke(main, ["replay"], env=env)
    assert refused.exit_code != 0 and "choose what to replay" in refused.output
    empty = CliRunner().invoke(main, ["replay", "--all"], env=env)
    assert empty.exit_code == 0
    assert (
        "no retained event matches (published events are deleted unless OUTBOX_RETENTION=keep)"
        in empty.output
    )
