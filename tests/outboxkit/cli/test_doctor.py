"""`outbox doctor` against the real stack: a sound deployment passes; each broken part fails with
its fix and exit code 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from outbox import migrations
from outboxkit.cli import main
from tests.isolated import SASL_LOGIN_ENV, IsolatedStack, free_port


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["doctor", "--json", *args], env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, orjson.loads(result.stdout)


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["outcome"] for c in report["checks"]}


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


@pytest.fixture
def env(new_database: Callable[[], str], bootstrap_servers: str) -> dict[str, str]:
    url = new_database()
    migrations.upgrade(url)
    return {"OUTBOX_DATABASE_URL": url, "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}


def test_a_sound_deployment_passes_every_check(env: dict[str, str], new_topic: Callable[..., str]) -> None:
    kv = new_topic("doctor-kv", partitions=2, config={"cleanup.policy": "compact"})
    events = new_topic("doctor-events", partitions=3)
    code, report = doctor(env, "--cdc", "--topic", events, "--kv-topic", kv)
    assert code == 0 and report["ok"], report
    seen = outcomes(report)
    assert set(seen.values()) <= {"pass", "warn"}, seen
    for name in ("settings", "database", "migrations", "relay privileges", "cdc wal_level", "cdc role"):
        assert seen[name] == "pass", name
    for name in ("kafka admin", "kafka producer", "kafka consumer", "kafka transactions"):
        assert seen[name] == "pass", name
    assert check(report, f"topic {events}")["detail"].startswith("3 partition(s), replication 1")
    assert seen[f"topic {kv} compaction"] == "pass"
    # A single broker is fine for development, and said to be so.
    assert check(report, "kafka replication")["fix"].startswith("fine for development")


def test_missing_migrations_fail_with_the_command_that_runs_them(
    new_database: Callable[[], str], bootstrap_servers: str
) -> None:
    env = {"OUTBOX_DATABASE_URL": new_database(), "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    code, report = doctor(env, "--no-transactions")
    assert code == 1 and not report["ok"]
    found = check(report, "migrations")
    assert found["outcome"] == "fail" and "outbox_events" in found["detail"]
    assert "outbox migrate upgrade" in found["fix"]


def test_a_privilege_the_relay_lacks_fails_with_the_grant(env: dict[str, str]) -> None:
    with psycopg.connect(env["OUTBOX_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("REVOKE DELETE ON outbox_events FROM CURRENT_USER")
        role = conn.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
    code, report = doctor(env, "--no-transactions")
    found = check(report, "relay privileges")
    assert code == 1 and found["outcome"] == "fail", found
    assert found["detail"] == f"role {role} lacks DELETE on outbox_events"
    assert found["fix"] == f"GRANT DELETE ON outbox_events TO {role}"


def test_a_database_out_of_reach_fails_and_the_checks_that_need_it_are_skipped(
    bootstrap_servers: str,
) -> None:
    url = f"postgresql://outbox:secret@127.0.0.1:{free_port()}/outbox"
    env = {"OUTBOX_DATABASE_URL": url, "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    code, report = doctor(env, "--no-transactions", "--timeout", "2")
    seen = outcomes(report)
    assert code == 1 and seen["database"] == "fail" and seen["migrations"] == "skip"
    assert "secret" not in orjson.dumps(report).decode()  # the password is masked everywhere


def test_kafka_out_of_reach_fails_every_client_quickly(env: dict[str, str]) -> None:
    env = {**env, "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    code, report = doctor(env, "--timeout", "2", "--topic", "anything")
    seen = outcomes(report)
    assert code == 1
    assert [seen[f"kafka {k}"] for k in ("admin", "producer", "consumer")] == ["fail"] * 3
    assert seen["kafka transactions"] == seen["topic anything"] == "skip"
    assert "OUTBOX_KAFKA_SECURITY_PROTOCOL" in check(report, "kafka admin")["fix"]


def test_topics_that_lose_writes_or_keep_deleted_keys_fail(
    env: dict[str, str], new_topic: Callable[..., str], unique: Callable[[str], str]
) -> None:
    not_compacted, absent = new_topic("doctor-plain"), unique("doctor-absent")
    refusing = new_topic("doctor-isr", config={"min.insync.replicas": "2"})
    code, report = doctor(
        env, "--no-transactions", "--kv-topic", not_compacted, "--topic", refusing, "--topic", absent
    )
    assert code == 1
    compaction = check(report, f"topic {not_compacted} compaction")
    assert compaction["outcome"] == "fail" and "cleanup.policy=compact" in compaction["fix"]
    isr = check(report, f"topic {refusing}")
    assert isr["outcome"] == "fail" and "every acks=all write is refused" in isr["detail"]
    assert check(report, f"topic {absent}")["detail"] == "does not exist"
    code, report = doctor(env, "--no-transactions", "--topic", absent)
    assert check(report, f"topic {absent}")["outcome"] == "fail", "the check created the topic"


def test_a_bad_setting_fails_the_settings_check(env: dict[str, str]) -> None:
    code, report = doctor({**env, "OUTBOX_KAFKA_SECURITY_PROTOCOL": "carrier-pigeon"})
    assert code == 1 and outcomes(report) == {"settings": "fail"}
    assert "OUTBOX_KAFKA_SECURITY_PROTOCOL" in check(report, "settings")["detail"]


def test_the_login_reaches_every_client_or_fails_each(secured: IsolatedStack, env: dict[str, str]) -> None:
    login = {**env, **SASL_LOGIN_ENV, "OUTBOX_KAFKA_BOOTSTRAP_SERVERS": secured.sasl_bootstrap_servers}
    code, report = doctor(login, "--timeout", "5")
    assert code == 0, report
    assert outcomes(report)["kafka transactions"] == "pass"
    wrong = {**login, "OUTBOX_KAFKA_SASL_PASSWORD": "not-the-password"}
    code, report = doctor(wrong, "--timeout", "3", "--no-transactions")
    seen = outcomes(report)
    assert code == 1 and [seen[f"kafka {k}"] for k in ("admin", "producer", "consumer")] == ["fail"] * 3
    assert "not-the-password" not in orjson.dumps(report).decode()
