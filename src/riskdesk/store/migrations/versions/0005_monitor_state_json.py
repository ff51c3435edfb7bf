"""monitor: the customer state's book and features and the processed events' bodies as
``json``, not ``jsonb``, on PostgreSQL

The intake rewrites both state documents of every customer it touches and writes one body per
event, and nothing queries into them (they are read whole). ``jsonb`` parses each written
document into its binary form (≈ 10–20 µs of server CPU per event on the event-intake
benchmark for the state alone); ``json`` only checks it. SQLite stores JSON as text either
way: nothing changes there. On a large ``monitor_events`` table the upgrade rewrites it.

Revision ID: 0005_monitor_state_json
Revises: 0004_monitor_lean_indexes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_monitor_state_json"
down_revision: str | Sequence[str] | None = "0004_monitor_lean_indexes"
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
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
