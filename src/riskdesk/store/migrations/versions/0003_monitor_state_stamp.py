"""monitor: a change stamp on the customer state (lets intake keep books in memory)

Revision ID: 0003_monitor_state_stamp
Revises: 0002_merge
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_monitor_state_stamp"
down_revision: str | Sequence[str] | None = "0002_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_customer_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stamp", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_customer_state", schema=None) as batch_op:
        batch_op.drop_column("stamp")
