"""What a rebuild's swap carries from the live read-model tables to the fresh ones: the grants and
the indexes made by hand (not by the projector's `metadata`), which dropping the live tables would
lose. Read before the drop, replayed on the new tables after the move, in the swap's transaction.

Not carried over (say so in the docs): column-level grants, triggers, row-level security policies,
comments, and constraints added by hand; recreate them in `rebuild(..., after_swap=...)`.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

GRANTS = text(
    """
    SELECT a.privilege_type,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,
           a.is_grantable
    FROM pg_class c
    CROSS JOIN LATERAL aclexplode(c.relacl) a
    LEFT JOIN pg_roles r ON r.oid = a.grantee
    WHERE c.oid = to_regclass(:table) AND a.grantee <> c.relowner
    ORDER BY 2, 1
    """
)
# Indexes that back no constraint: a primary key or unique constraint comes with `metadata`.
INDEXES = text(
    """
    SELECT i.relname, pg_get_indexdef(i.oid)
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
    WHERE x.indrelid = to_regclass(:table)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
    ORDER BY i.relname
    """
)
INDEX_NAMES = text(
    "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
    " WHERE x.indrelid = to_regclass(:table)"
)


def carried_over(conn: Connection, live: str, fresh: str) -> list[str]:
    """Statements that give table `fresh` (once it is moved to `live`'s place) the grants of the
    live table and its indexes that `fresh` lacks by name. `live`, `fresh`: qualified, quoted."""
    if conn.execute(text("SELECT to_regclass(:table)"), {"table": live}).scalar() is None:
        return []  # no live table yet: nothing to carry
    statements = [
        f"GRANT {privilege} ON {live} TO {grantee}{' WITH GRANT OPTION' if grantable else ''}"
        for privilege, grantee, grantable in conn.execute(GRANTS, {"table": live})
    ]
    made = set(conn.execute(INDEX_NAMES, {"table": fresh}).scalars())
    # pg_get_indexdef names the live table, which the fresh one replaces: replayed after the move.
    statements += [
        definition for name, definition in conn.execute(INDEXES, {"table": live}) if name not in made
    ]
    return statements
