"""A small inventory service built on outboxkit the way a new user builds one: SQLAlchemy 2 ORM
models, its own Alembic environment that includes our migrations, a writer that publishes through
the outbox and a projector. `write_service(root, ...)` writes its files; tests run them from the
dev venv (tests/outbox/test_autogenerate.py) and from a clean venv holding the wheel
(tests/test_wheel.py)."""

from __future__ import annotations

from pathlib import Path

ALEMBIC_INI = """[alembic]
script_location = %(here)s/migrations
path_separator = space
version_locations = %(here)s/migrations/versions {ours}
"""

ENV_PY = '''"""The inventory service's Alembic environment (the URL comes from OUTBOX_DATABASE_URL)."""
import os
import sys
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inventory.models import Base, read_model  # noqa: E402
from outbox.autogenerate import include_object  # noqa: E402
from outbox.migrations import sqlalchemy_url  # noqa: E402

EXCLUDE = {exclude!r}

engine = create_engine(sqlalchemy_url(os.environ["OUTBOX_DATABASE_URL"]), poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=[Base.metadata, read_model],
        include_object=include_object if EXCLUDE else None,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
'''

SCRIPT_MAKO = '''"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""
import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''

MODELS_PY = '''"""The inventory service's tables: its rows (ORM) and its projector's read model."""
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from projectors.versioning import version_columns


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    sku: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    quantity: Mapped[int] = mapped_column(default=0)


read_model = sa.MetaData()
stock_view = sa.Table(
    "stock_view",
    read_model,
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("quantity", sa.Integer, nullable=False),
    *version_columns(),
)
'''

WRITER_PY = '''"""Write N items and their `item.stocked` events: `python -m inventory.writer N`."""
import os
import sys

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from inventory.models import Item
from outbox import Event, publish
from outbox.migrations import sqlalchemy_url

TOPIC = os.environ["INVENTORY_TOPIC"]


def main(count: int) -> None:
    engine = create_engine(sqlalchemy_url(os.environ["OUTBOX_DATABASE_URL"]))
    for n in range(count):
        with Session(engine) as session, session.begin():
            item = Item(sku=f"sku-{n}", name=f"item {n}", quantity=n)
            session.add(item)
            publish(
                session,
                Event(
                    type="item.stocked",
                    aggregate_type="item",
                    aggregate_id=item.sku,
                    payload={"sku": item.sku, "quantity": item.quantity},
                    topic=TOPIC,
                ),
            )
    engine.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]))
'''

PROJECTION_PY = '''"""The stock_view projector: `outbox projector run inventory.projection:projector`."""
import os

from sqlalchemy import Connection

from inventory.models import read_model, stock_view
from outboxkit.kafka.records import ReceivedEvent
from projectors import Projector, version_of, versioned_upsert

projector = Projector("inventory-stock", [os.environ["INVENTORY_TOPIC"]], metadata=read_model)
upsert = versioned_upsert(stock_view, ["sku"], columns=["quantity"])


@projector.handles("item.stocked")
def stocked(event: ReceivedEvent, conn: Connection) -> None:
    row = {{"sku": event.payload["sku"], "quantity": event.payload["quantity"]}}
    conn.execute(upsert, {{**row, **version_of(event)}})
'''


def write_service(root: Path, *, ours: str, exclude_outboxkit: bool = True) -> Path:
    """Write the service under `root`; `ours`: outboxkit's versions directory as alembic.ini names
    it (a path, or `outbox:_migrations/versions` for a wheel install). Returns `root`."""
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "inventory").mkdir()
    (root / "alembic.ini").write_text(ALEMBIC_INI.format(ours=ours))
    (root / "migrations" / "env.py").write_text(ENV_PY.replace("{exclude!r}", repr(exclude_outboxkit)))
    (root / "migrations" / "script.py.mako").write_text(SCRIPT_MAKO)
    (root / "inventory" / "__init__.py").write_text("")
    (root / "inventory" / "models.py").write_text(MODELS_PY)
    (root / "inventory" / "writer.py").write_text(WRITER_PY)
    (root / "inventory" / "projection.py").write_text(PROJECTION_PY.replace("{{", "{").replace("}}", "}"))
    return root
