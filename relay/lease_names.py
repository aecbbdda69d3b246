"""How relays name their lease connections, and how `relay status` reads the names back.

A relay's lease connection (relay/leases.py) has the application_name
`outbox-relay:<group>/<instance>`: PostgreSQL shows it in pg_stat_activity next to the backend
pid that holds the shard locks, so a status read can name the group and the relay instance
(`host-pid`, as the relay's logs and /healthz say) that owns a shard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import psycopg

APPLICATION_PREFIX = "outbox-relay:"
NAMEDATALEN = 64
"""PostgreSQL keeps application_name to NAMEDATALEN - 1 bytes and silently cuts the rest."""

INSTANCE_SEPARATOR = "/"
"""Between the group and the relay's instance in a lease connection's application_name (a group
name cannot contain it)."""


def lease_application_name(group: str, instance: str | None = None) -> str:
    """The application_name of a group's lease connections: how `relay status` names the group
    and the relay instance holding a shard (`outbox-relay:<group>/<instance>`).

    A name PostgreSQL would cut (a group may have 100 characters) would never equal the stored one,
    and two long groups with a common prefix would be cut to the same name; such a group is named
    by a readable prefix and a hash of the whole group instead, the same in every relay (`~`
    cannot occur in a group name, so a hashed name never equals a short group's). The instance
    comes last and is cut to what room is left (a long group leaves little; the pid is always
    shown next to it).
    """
    name = APPLICATION_PREFIX + group
    if len(name.encode()) >= NAMEDATALEN:
        digest = hashlib.sha256(group.encode()).hexdigest()[:16]
        keep = NAMEDATALEN - 1 - len(APPLICATION_PREFIX) - len(digest) - 1
        name = f"{APPLICATION_PREFIX}{group[:keep]}~{digest}"
    if instance:
        room = NAMEDATALEN - 1 - len(name.encode()) - len(INSTANCE_SEPARATOR)
        cut = instance.encode()[: max(room, 0)].decode(errors="ignore")
        if cut:
            name = f"{name}{INSTANCE_SEPARATOR}{cut}"
    return name


def parse_application_name(name: str | None) -> tuple[str, str | None]:
    """(group, instance) from a lease connection's application_name; the instance is None for a
    relay of an earlier version (it did not name itself)."""
    name = name or ""
    if not name.startswith(APPLICATION_PREFIX):
        return f"(application_name {name!r})", None
    group, separator, instance = name[len(APPLICATION_PREFIX) :].partition(INSTANCE_SEPARATOR)
    return group, (instance or None) if separator else None


def instances_of(conn: psycopg.Connection[Any], pids: Iterable[int]) -> dict[int, str | None]:
    """backend pid -> the relay instance that lease connection belongs to (as its application_name
    names it; None for a relay of an earlier version, or a backend that is gone)."""
    wanted = sorted(set(pids))
    rows = conn.execute(
        "SELECT pid, application_name FROM pg_stat_activity WHERE pid = ANY(%s)", (wanted,)
    ).fetchall()
    named = {int(pid): parse_application_name(name)[1] for pid, name in rows}
    return {pid: named.get(pid) for pid in wanted}
