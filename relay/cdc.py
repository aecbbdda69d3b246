"""The CDC relay's configuration: Debezium's PostgreSQL connector plus the Outbox Event Router, set up
so that every record it writes is byte-identical to the polling relay's (outbox.envelope.to_kafka).

Pure: builds the Kafka Connect connector config from the settings; relay/connect.py applies it.

How each part of the envelope comes out the same (checked byte for byte by tests/relay/conformance.py):

- topic: the router routes by the `topic` column with the replacement `${routedByValue}`, so the
  topic is the column's text, as the polling relay uses it; one topic rule for both.
- key: the router's event key is `aggregate_id` (a text column); StringConverter writes its UTF-8.
- value: `payload` is bytea; Debezium hands it over as BYTES (binary.handling.mode=bytes) and
  ByteArrayConverter writes it untouched (no JSON re-encoding, whatever the serializer was).
- headers: the router places the envelope columns into headers (all `text`, already rendered by
  publish(); `ce_id` is a uuid, which Debezium renders as the same lowercase string as `ce_id::text`),
  plus the jsonb `headers` column under a private name. The router also adds its own `id` header and
  keeps a header for a NULL `traceparent`, in its own order. outboxkit's transform CloudEventsHeaders
  (stack/smt) then writes exactly to_kafka's list: `ce_specversion` (a literal) and the envelope
  headers in to_kafka's order, `traceparent` only when not NULL, then the user headers sorted by
  code point, and drops everything else. header.converter=ByteArrayConverter: the bytes are the
  transform's UTF-8, not a converter's rendering.
- deletes (CDC retention, the polling relay's own DELETEs) and tombstones are dropped by the router;
  heartbeat records are dropped before they reach a converter (they still advance the slot).
- an event whose payload is outbox.TOMBSTONE (a NULL `payload`) becomes a record with a null value
  (route.tombstone.on.empty.payload), a delete on a compacted topic; CloudEventsHeaders gives it the
  same headers as any event, so it is the polling relay's null-value record byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from outbox import envelope
from outbox.config import OutboxSettings
from outbox.errors import ConfigurationError
from outbox.schema import TABLE
from outbox.urls import libpq_url
from relay.errors import ConnectorConflictError

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
EVENT_ROUTER = "io.debezium.transforms.outbox.EventRouter"
HEADERS_TRANSFORM = "io.outboxkit.connect.CloudEventsHeaders"
STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"
BYTES_CONVERTER = "org.apache.kafka.connect.converters.ByteArrayConverter"

USER_HEADERS = "outboxkit.user-headers"
"""Private header carrying the jsonb `headers` column from the router to CloudEventsHeaders."""

HEADER_COLUMNS = {
    envelope.CE_ID: "ce_id",
    envelope.CE_TYPE: "ce_type",
    envelope.CE_SOURCE: "ce_source",
    envelope.CE_TIME: "ce_time",
    envelope.CE_SUBJECT: "aggregate_id",
    envelope.CONTENT_TYPE: "content_type",
    envelope.TRACEPARENT: "traceparent",
}
"""Envelope header -> outbox_events column it is rendered from (ce_specversion is a literal)."""


class SnapshotMode(StrEnum):
    """What the connector does with rows already in the table when it first starts."""

    NO_DATA = "no_data"
    """Stream from the slot's creation on; rows written earlier are not published (the default)."""

    INITIAL = "initial"
    """First publish the table's unpublished rows in id order, then stream: the hand-over from polling."""


class CdcSettings(BaseSettings):
    """Knobs of the CDC relay. Every field has an OUTBOX_CDC_<NAME> environment variable."""

    model_config = SettingsConfigDict(env_prefix="OUTBOX_CDC_", frozen=True, hide_input_in_errors=True)

    connector_name: str = Field(default="outboxkit-outbox", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    """Name of the connector in Kafka Connect."""

    slot_name: str = Field(default="outboxkit_outbox", pattern=r"^[a-z0-9_]{1,63}$")
    """PostgreSQL logical replication slot; it holds WAL until Kafka has the events."""

    publication: str = Field(default="outboxkit_outbox", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """Publication restricted to the outbox table (created by the connector when missing)."""

    topic_prefix: str = Field(default="outboxkit", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    """Debezium's logical server name: prefixes its heartbeat topic (events go to their own topics)."""

    exactly_once: bool = False
    """exactly.once.support=required with a transaction per poll (the worker must enable EOS)."""

    heartbeat_interval_ms: int = Field(default=10_000, ge=0)
    """Heartbeats make the connector confirm its position while the outbox is idle, so the slot
    follows the WAL (with lsn.flush.mode below); 0 turns them off."""

    poll_interval_ms: int = Field(default=10, ge=1)
    """Debezium's wait for more changes before it hands a batch to Connect (latency vs. batching)."""

    max_batch_size: int = Field(default=2048, ge=1)
    """Most change events per batch handed to Connect."""

    snapshot_mode: SnapshotMode = SnapshotMode.NO_DATA
    """no_data, or initial to publish rows already in the table first (switching from polling)."""

    schema_name: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """PostgreSQL schema of the outbox table."""

    database_password: str | None = None
    """A reference the Connect worker resolves with its config providers, e.g. `${env:PGPASSWORD}` or
    `${file:/run/secrets/db.properties:password}`, sent as `database.password` instead of the
    URL's password: then the secret is in neither Connect's config topic nor its REST answers."""

    @field_validator("database_password")
    @classmethod
    def _a_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\$\{(env|file):[^}]+\}", value):
            raise ValueError(
                "must be a reference the Connect worker resolves, like ${env:PGPASSWORD} or "
                "${file:/run/secrets/db.properties:password}; a literal password belongs in the database URL"
            )
        return value


def connector_config(outbox: OutboxSettings, cdc: CdcSettings) -> dict[str, str]:
    """The connector's configuration (what `PUT /connectors/<name>/config` takes), all strings."""
    db = _database(outbox.database_url)
    table = f"{cdc.schema_name}.{TABLE}"
    config: dict[str, Any] = {
        "connector.class": POSTGRES_CONNECTOR,
        "tasks.max": 1,  # one task reads the slot, in commit (LSN) order
        "database.hostname": db.get("host") or "localhost",
        "database.port": db.get("port") or 5432,
        "database.user": db.get("user") or "postgres",
        "database.password": cdc.database_password or db.get("password") or "",
        "database.dbname": db.get("dbname") or db.get("user") or "postgres",
        "topic.prefix": cdc.topic_prefix,
        "plugin.name": "pgoutput",
        "slot.name": cdc.slot_name,
        "publication.name": cdc.publication,
        "publication.autocreate.mode": "filtered",
        "table.include.list": table,
        "snapshot.mode": cdc.snapshot_mode.value,
        "tombstones.on.delete": "false",
        "heartbeat.interval.ms": cdc.heartbeat_interval_ms,
        # With pgoutput, PostgreSQL 15 sends nothing for transactions that touch no published
        # table, so while the outbox is idle Debezium has no newer position to confirm and the
        # slot pins all the other tables' WAL, heartbeats or not. In this mode the JDBC driver
        # also confirms the server's keepalive position when everything received has been
        # flushed: the slot follows the WAL (tests/relay/test_cdc.py measures it).
        "lsn.flush.mode": "connector_and_driver",
        "poll.interval.ms": cdc.poll_interval_ms,
        "max.batch.size": cdc.max_batch_size,
        "binary.handling.mode": "bytes",
        "key.converter": STRING_CONVERTER,
        "value.converter": BYTES_CONVERTER,
        "header.converter": BYTES_CONVERTER,
        # Heartbeats are records too; no converter above could write them, and no consumer wants
        # them. Dropped in the chain, their offsets are still committed, so the slot advances.
        "transforms": "heartbeats,outbox,envelope",
        "transforms.heartbeats.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.heartbeats.predicate": "heartbeat",
        "predicates": "heartbeat",
        "predicates.heartbeat.type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        "predicates.heartbeat.pattern": "__debezium-heartbeat\\..*",
        "transforms.outbox.type": EVENT_ROUTER,
        "transforms.outbox.table.field.event.id": "ce_id",
        "transforms.outbox.table.field.event.key": "aggregate_id",
        "transforms.outbox.table.field.event.payload": "payload",
        "transforms.outbox.table.expand.json.payload": "false",
        "transforms.outbox.route.by.field": "topic",
        "transforms.outbox.route.topic.replacement": "${routedByValue}",
        # A NULL payload (outbox.TOMBSTONE) becomes a record with a null value, as the polling relay
        # sends it: a delete on a compacted topic.
        "transforms.outbox.route.tombstone.on.empty.payload": "true",
        "transforms.outbox.table.fields.additional.placement": ",".join(
            [f"{column}:header:{name}" for name, column in HEADER_COLUMNS.items()]
            + [f"headers:header:{USER_HEADERS}"]
        ),
        "transforms.envelope.type": HEADERS_TRANSFORM,
        "transforms.envelope.headers": ",".join(_envelope_slots()),
        "transforms.envelope.json.header": USER_HEADERS,
    }
    if cdc.snapshot_mode is SnapshotMode.INITIAL:
        # The hand-over from the polling relay: what it has not published, in its order.
        config["snapshot.select.statement.overrides"] = table
        config[f"snapshot.select.statement.overrides.{table}"] = (
            f"SELECT * FROM {table} WHERE published_at IS NULL ORDER BY id"
        )
    if cdc.exactly_once:
        # KIP-618: records and source offsets commit in one Kafka transaction per poll() batch.
        config["exactly.once.support"] = "required"
        config["transaction.boundary"] = "poll"
    return {key: str(value) for key, value in config.items()}


SOURCE_KEYS = (
    "connector.class",
    "database.hostname",
    "database.port",
    "database.dbname",
    "table.include.list",
    "slot.name",
)
"""What makes a connector *this service's*: the same source. Anything else is a setting to update."""


def refuse_repointing(name: str, existing: Mapping[str, str] | None, wanted: Mapping[str, str]) -> None:
    """Raise ConnectorConflictError when connector `name` exists in Connect with another source.

    Connect's `PUT /connectors/<name>/config` replaces whatever has that name: with a name two
    services share, the second registration would silently move the first one's connector to its
    own database, and the first service's events would stop flowing (its slot left pinning WAL).
    """
    if existing is None:
        return
    differs = [key for key in SOURCE_KEYS if existing.get(key) != wanted.get(key)]
    if not differs:
        return
    raise ConnectorConflictError(
        f"connector {name!r} already exists in Kafka Connect and streams {_source(existing)}; this"
        f" registration would re-point it to {_source(wanted)} (differs in {', '.join(differs)})."
        " If that connector belongs to another service, give this one its own connector name"
        " (OUTBOX_CDC_CONNECTOR_NAME, with its own slot and publication). If you really mean to move"
        " it, register again with --replace, then drop its old slot in the old database (it keeps"
        " WAL until dropped)."
    )


def _source(config: Mapping[str, str]) -> str:
    if config.get("connector.class") != POSTGRES_CONNECTOR:
        return f"with connector class {config.get('connector.class')!r}, not Debezium's PostgreSQL connector"
    return (
        f"database {config.get('database.dbname')!r} on {config.get('database.hostname')}:"
        f"{config.get('database.port')} (table {config.get('table.include.list')},"
        f" slot {config.get('slot.name')})"
    )


def _envelope_slots() -> list[str]:
    """CloudEventsHeaders' `headers`: to_kafka's envelope headers in to_kafka's order."""
    sample = envelope.StoredEvent(
        ce_id="-",
        ce_type="-",
        ce_source="-",
        ce_time="-",
        aggregate_type="-",
        aggregate_id="-",
        topic="-",
        content_type="-",
        payload=b"",
        traceparent="-",
    )
    slots = []
    for name, _ in envelope.to_kafka(sample).headers:
        if name == envelope.CE_SPECVERSION:
            slots.append(f"{name}={envelope.SPECVERSION}")
        elif name in HEADER_COLUMNS:
            slots.append(name)
        else:  # a new envelope header: map it to a column above, or the relays would differ
            raise ConfigurationError(f"envelope header {name!r} has no outbox_events column for CDC")
    return slots


def _database(url: str) -> dict[str, Any]:
    """libpq parts of any database URL the settings accept (libpq_url raises ConfigurationError)."""
    return conninfo_to_dict(libpq_url(url))
