"""`outbox doctor`: check a deployment, print each check with pass/fail and the fix."""

from __future__ import annotations

from typing import Any

import click
import orjson
import psycopg

from outbox.errors import OutboxError
from outbox.urls import mask_url, postgres_problem
from outboxkit.cli.settings import CONFIG, JSON_OUTPUT, CommandSettings
from outboxkit.doctor import database, kafka
from outboxkit.doctor.report import Check, Outcome, Report, failed, passed, skipped, warned
from relay.cdc import CdcSettings
from relay.settings import RelaySettings

MARKS = {Outcome.PASS: "PASS", Outcome.WARN: "WARN", Outcome.FAIL: "FAIL", Outcome.SKIP: "SKIP"}


@click.command()
@CONFIG
@click.option("--relay/--no-relay", default=True, show_default=True, help="The relay role's privileges.")
@click.option("--cdc", is_flag=True, help="Also what Debezium needs: wal_level, REPLICATION, a free slot.")
@click.option(
    "--transactions/--no-transactions",
    default=True,
    show_default=True,
    help="The broker's transaction settings and a real init_transactions().",
)
@click.option("--topic", "topics", multiple=True, metavar="NAME", help="Check a topic (repeatable).")
@click.option(
    "--kv-topic", "kv_topics", multiple=True, metavar="NAME", help="Check a KV store's topic, compaction too."
)
@click.option(
    "--timeout", default=10.0, show_default=True, help="Seconds each Kafka or database call may take."
)
@JSON_OUTPUT
@click.pass_context
def doctor(
    ctx: click.Context,
    *,
    relay: bool,
    cdc: bool,
    transactions: bool,
    topics: tuple[str, ...],
    kv_topics: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Check a deployment: settings, database, migrations, privileges, CDC, Kafka and topics.

    Each check prints PASS, WARN or FAIL with what it saw, and the fix. The exit code is 1 when a
    check fails, so `outbox doctor` can gate a deploy. It only reads (the transactions check
    initialises one transactional id, `outboxkit-doctor`).
    """
    report = Report()
    settings = _settings(ctx, report)
    if settings is not None:
        outbox_url, kafka_settings, relay_settings, cdc_settings = settings
        report.add(_database(outbox_url, relay=relay, cdc=cdc, slot=cdc_settings.slot_name, timeout=timeout))
        report.add(kafka.clients_reach_cluster(kafka_settings, timeout, relay_settings.producer))
        reached = all(c.outcome is Outcome.PASS for c in report if c.name.startswith("kafka "))
        if transactions:
            report.add(
                kafka.transactions(kafka_settings, timeout)
                if reached
                else [skipped("kafka transactions", "Kafka not reached")]
            )
        for name in topics:
            report.add(
                kafka.topic(kafka_settings, name, timeout)
                if reached
                else [skipped(f"topic {name}", "Kafka not reached")]
            )
        for name in kv_topics:
            report.add(
                kafka.topic(kafka_settings, name, timeout, compacted=True)
                if reached
                else [skipped(f"topic {name}", "Kafka not reached")]
            )
    if as_json:
        click.echo(orjson.dumps(report.to_json()).decode())
    else:
        _print(report)
    ctx.exit(0 if report.ok else 1)


def _settings(ctx: click.Context, report: Report) -> tuple[str, Any, RelaySettings, CdcSettings] | None:
    loaded = CommandSettings(ctx)
    try:
        outbox, kafka_settings = loaded.outbox, loaded.kafka
        relay_settings = loaded.section("relay", RelaySettings)
        cdc_settings = loaded.section("cdc", CdcSettings)
    except OutboxError as err:
        report.add([failed("settings", str(err), "fix the setting named above (docs/operations.md)")])
        return None
    source = loaded.database_source
    detail = (
        f"database {mask_url(outbox.database_url)} (from {source or 'the built-in default'});"
        f" kafka {kafka_settings.describe()}"
    )
    if source is None:
        fix = "name the deployment's database: --database-url, OUTBOX_DATABASE_URL or --config"
        report.add([warned("settings", detail + ": the local development stack's URL", fix)])
    else:
        report.add([passed("settings", detail)])
    return outbox.database_url, kafka_settings, relay_settings, cdc_settings


def _database(url: str, *, relay: bool, cdc: bool, slot: str, timeout: float) -> list[Check]:
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)))
    except psycopg.Error as err:
        fix = "check OUTBOX_DATABASE_URL (or --database-url) and that PostgreSQL runs there"
        later = ["migrations"] + (["relay privileges"] if relay else []) + (["cdc"] if cdc else [])
        return [failed("database", postgres_problem(url, err), fix)] + [
            skipped(name, "no database connection") for name in later
        ]
    with conn:
        version = conn.info.server_version
        checks = [passed("database", f"PostgreSQL {version // 10000}.{version % 10000} at {mask_url(url)}")]
        checks += database.migrations_at_head(conn, url)
        if relay:
            checks += database.relay_privileges(conn)
        if cdc:
            checks += database.cdc_settings(conn, slot)
    return checks


def _print(report: Report) -> None:
    width = max(len(c.name) for c in report)
    for check in report:
        click.echo(f"{MARKS[check.outcome]}  {check.name:<{width}}  {check.detail}")
        if check.fix:
            click.echo(f"      {'':<{width}}  fix: {check.fix}")
    failures = sum(c.outcome in (Outcome.FAIL, Outcome.SKIP) for c in report)
    click.echo("all checks passed" if report.ok else f"{failures} check(s) failed or could not run")
