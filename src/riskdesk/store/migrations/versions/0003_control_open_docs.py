"""control: partial indexes on open orders and open invoices (the order check's document read)

Revision ID: 0003_control_open_docs
Revises: 0003_monitor_state_stamp
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_control_open_docs"
down_revision: str | Sequence[str] | None = "0003_monitor_state_stamp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the same text as the models' (riskdesk/store/models/core.py) and the check's query: SQLite
# uses a partial index only when the query repeats its WHERE terms
OPEN_ORDERS = "status IN ('open', 'shipped')"
OPEN_INVOICES = "status NOT IN ('paid', 'cancelled', 'written_off')"


def upgrade() -> None:
    op.create_index(
        "ix_orders_customer_open",
        "orders",
        ["customer_id", "order_date"],
        sqlite_where=sa.text(OPEN_ORDERS),
        postgresql_where=sa.text(OPEN_ORDERS),
    )
    op.create_index(
        "ix_invoices_customer_open",
        "invoices",
        ["customer_id", "issue_date"],
        sqlite_where=sa.text(OPEN_INVOICES),
        postgresql_where=sa.text(OPEN_INVOICES),
    )


def downgrade() -> None:
    op.drop_index("ix_invoices_customer_open", table_name="invoices")
    op.drop_index("ix_orders_customer_open", table_name="orders")
