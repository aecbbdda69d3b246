"""Checks PostgreSQL answers: the migrations, the relay role's privileges, CDC's WAL settings."""

from __future__ import annotations

from typing import Any

import psycopg

from outbox import migrations
from outbox.errors import OutboxError
from outbox.schema import TABLE
from outboxkit.doctor.report import Check, failed, passed, warned

QUARANTINE = "outbox_quarantine"
TABLES = (TABLE, QUARANTINE, "projector_offsets")
RELAY_PRIVILEGES = {TABLE: ("SELECT", "UPDATE", "DELETE"), QUARANTINE: ("INSERT",)}
"""What `outbox relay run` does to our tables (docs/deployment.md)."""

MIGRATE = (
    "run `outbox migrate upgrade` (or `alembic upgrade heads` in your own Alembic environment"
    " that includes our version location)"
)


def migrations_at_head(conn: psycopg.Connection[Any], url: str) -> list[Check]:
    try:
        current = migrations.current(url)
    except OutboxError as err:
        return [failed("migrations", f"cannot read the applied revisions: {err}", MIGRATE)]
    heads = migrations.head_revisions()
    missing = [t for t in TABLES if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone() == (None,)]
    if not current:
        return [
            failed(
                "migrations", "no revision of ours is applied; missing tables: " + ", ".join(missing), MIGRATE
            )
        ]
    if set(current) != set(heads):
        detail = f"at {', '.join(current)}, the installed release's head is {', '.join(heads)}"
        return [failed("migrations", detail, MIGRATE)]
    if missing:
        detail = (
            f"at head {', '.join(heads)}, but tables are missing: {', '.join(missing)} (dropped by hand?)"
        )
        return [
            failed("migrations", detail, "restore them, or downgrade and upgrade again: `outbox migrate`")
        ]
    return [passed("migrations", f"at head {', '.join(heads)}; tables {', '.join(TABLES)} present")]


def relay_privileges(conn: psycopg.Connection[Any]) -> list[Check]:
    role = conn.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
    lacking = []
    for table, privileges in RELAY_PRIVILEGES.items():
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
            continue  # reported by the migrations check
        for privilege in privileges:
            row = conn.execute(
                "SELECT has_table_privilege(current_user, %s, %s)", (table, privilege)
            ).fetchone()
            if row != (True,):
                lacking.append((table, privilege))
    if lacking:
        grants = "; ".join(
            f"GRANT {', '.join(p for t, p in lacking if t == table)} ON {table} TO {role}"
            for table in dict.fromkeys(t for t, _ in lacking)
        )
        detail = f"role {role} lacks " + ", ".join(f"{p} on {t}" for t, p in lacking)
        return [failed("relay privileges", detail, grants)]
    wanted = "; ".join(f"{', '.join(p)} on {t}" for t, p in RELAY_PRIVILEGES.items())
    return [passed("relay privileges", f"role {role} has {wanted}")]


def cdc_settings(conn: psycopg.Connection[Any], slot: str) -> list[Check]:
    """What Debezium's PostgreSQL connector needs of the server, and the state of its slot."""
    checks = []
    wal_level = _setting(conn, "wal_level")
    if wal_level == "logical":
        checks.append(passed("cdc wal_level", "logical"))
    else:
        fix = "ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL"
        checks.append(failed("cdc wal_level", f"{wal_level}: logical decoding is off", fix))
    role, replication = conn.execute(
        "SELECT rolname, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()  # type: ignore[misc]
    if replication:
        checks.append(passed("cdc role", f"{role} may replicate"))
    else:
        checks.append(failed("cdc role", f"{role} lacks REPLICATION", f"ALTER ROLE {role} REPLICATION"))
    slots_max = int(_setting(conn, "max_replication_slots"))
    used, ours, active, retained = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE slot_name = %(s)s),"
        " bool_or(active) FILTER (WHERE slot_name = %(s)s),"
        " max(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) FILTER (WHERE slot_name = %(s)s)::bigint"
        " FROM pg_replication_slots",
        {"s": slot},
    ).fetchone()  # type: ignore[misc]
    if ours:
        state = "active" if active else "INACTIVE"
        detail = f"slot {slot} exists, {state}, retains {retained or 0} bytes of WAL"
        if active:
            checks.append(passed("cdc slot", detail))
        else:
            fix = (
                "resume or register the connector (`outbox cdc resume|register`),"
                " or `outbox cdc remove` to drop the slot"
            )
            checks.append(warned("cdc slot", detail + " (it pins WAL until a connector streams)", fix))
    elif used >= slots_max:
        fix = f"raise max_replication_slots above {slots_max} (restart), or drop an unused slot"
        checks.append(failed("cdc slot", f"no slot {slot} yet and all {slots_max} slots are taken", fix))
    else:
        checks.append(
            passed(
                "cdc slot",
                f"{slot} not created yet ({used} of {slots_max} slots used):"
                " `outbox cdc register` creates it",
            )
        )
    return checks


def _setting(conn: psycopg.Connection[Any], name: str) -> str:
    return str(conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0])  # type: ignore[index]
