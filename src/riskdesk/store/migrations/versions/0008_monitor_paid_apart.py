"""monitor: the settled invoices of a customer's book in a column of their own

The intake writes a customer's book with every event of the customer. Its ``paid`` section
(the invoices settled in the last 180 days, with their payments) is most of the book of a
customer with a history (2.0 of 3.0 KB on ``bench_events.py --history 100 --days 30``), and
most events leave it as it is. Kept in the column ``paid``, it is written only when it
changed (``paid = COALESCE(new, paid)``): on PostgreSQL the stored value, compressed and
perhaps out of line, is then kept as it is instead of being compressed and written again.

Rows written before keep the section inside ``book`` (``paid`` NULL) until the intake next
writes them. The downgrade puts every row's section back into its book.

Revision ID: 0008_monitor_paid_apart
Revises: 0007_monitor_book_lz4
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_monitor_paid_apart"
down_revision: str | Sequence[str] | None = "0007_monitor_book_lz4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.add_column("monitor_customer_state", sa.Column("paid", sa.Text() if pg else sa.JSON()))
    if pg:
        op.execute(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_settings WHERE name = "
            "'default_toast_compression' AND 'lz4' = ANY(enumvals)) THEN "
            "ALTER TABLE monitor_customer_state ALTER COLUMN paid SET COMPRESSION lz4; "
            "END IF; END $$"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE monitor_customer_state SET book = "
            "jsonb_set(book::jsonb, '{paid}', paid::jsonb)::text WHERE paid IS NOT NULL"
        )
    else:
        op.execute(
            "UPDATE monitor_customer_state SET book = json_set(book, '$.paid', json(paid)) "
            "WHERE paid IS NOT NULL"
        )
    with op.batch_alter_table("monitor_customer_state") as batch:
        batch.drop_column("paid")
