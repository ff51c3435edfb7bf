"""monitor: the customer state's book and features and the processed events' bodies as
``text`` on PostgreSQL

They are JSON documents the intake writes (each touched customer's book and features, one body
per event) and reads back whole; nothing queries into them. As ``json`` the server parsed each
written document to check it (with it: 128–138 µs of PostgreSQL CPU per event on
``bench_events.py --via direct --history 100``, 113–116 without), and psycopg read them
back with Python's ``json``; as ``text`` the application writes and reads them with orjson
(:class:`riskdesk.store.types.JSONDocType`). SQLite stores JSON as text either way: nothing
changes there. On a large ``monitor_events`` table the upgrade rewrites it.

Revision ID: 0006_monitor_docs_text
Revises: 0005_monitor_state_json
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_monitor_docs_text"
down_revision: str | Sequence[str] | None = "0005_monitor_state_json"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {"monitor_customer_state": ("book", "features"), "monitor_events": ("body",)}


def _retype(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, cols in COLUMNS.items():
        alters = ", ".join(f"ALTER COLUMN {c} TYPE {kind} USING {c}::{kind}" for c in cols)
        op.execute(f"ALTER TABLE {table} {alters}")


def upgrade() -> None:
    _retype("text")


def downgrade() -> None:
    _retype("json")
