"""monitor: drop three indexes no query uses (fewer pages written per intake batch)

* ``ix_monitor_events_customer_ref``: nothing reads the processed events by customer (the
  dry run reads them in ``event_time`` order, which keeps its index);
* ``ix_monitor_alerts_customer_ref``: the open-alert read by customer uses the leading
  column of ``ix_monitor_alerts_open`` (customer_ref, rule_id, status);
* ``ix_monitor_alerts_rule_id``: no query selects alerts by rule alone.

Every index is one more B-tree page to change per inserted row; the downgrade recreates them.

Revision ID: 0004_monitor_lean_indexes
Revises: 0003_control_open_docs
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_monitor_lean_indexes"
down_revision: str | Sequence[str] | None = "0003_control_open_docs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = (
    ("ix_monitor_events_customer_ref", "monitor_events", ["customer_ref"]),
    ("ix_monitor_alerts_customer_ref", "monitor_alerts", ["customer_ref"]),
    ("ix_monitor_alerts_rule_id", "monitor_alerts", ["rule_id"]),
)


def upgrade() -> None:
    for name, table, _ in DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, cols in DROPPED:
        op.create_index(name, table, cols, unique=False)
