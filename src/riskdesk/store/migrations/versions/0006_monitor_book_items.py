"""monitor: the customer book stored in parts, its items in ``monitor_book_items``

The state row keeps the book's head (currency, date, signals); each invoice (its open row,
allocations, credit notes and paid record) and each order is one row of
``monitor_book_items``, so an intake batch writes only the items its events changed instead
of every touched customer's whole book. Books written before stay whole in their state row
until the intake next writes them (they are read either way); the downgrade puts every book
back together in its state row.

Revision ID: 0006_monitor_book_items
Revises: 0005_monitor_state_json
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_monitor_book_items"
down_revision: str | Sequence[str] | None = "0005_monitor_state_json"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitor_book_items",
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_ref"],
            ["monitor_customer_state.customer_ref"],
            name=op.f("fk_monitor_book_items_customer_ref_monitor_customer_state"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "customer_ref", "kind", "item_id", name=op.f("pk_monitor_book_items")
        ),
    )


def downgrade() -> None:
    from riskdesk.monitor.state import book_from_parts

    bind = op.get_bind()
    items: dict[str, list[tuple[str, str, object]]] = {}
    for ref, kind, key, body in bind.execute(
        sa.text("SELECT customer_ref, kind, item_id, body FROM monitor_book_items")
    ):
        items.setdefault(ref, []).append(
            (kind, key, json.loads(body) if isinstance(body, str) else body)
        )
    for ref, book in list(
        bind.execute(sa.text("SELECT customer_ref, book FROM monitor_customer_state"))
    ):
        head = json.loads(book) if isinstance(book, str) else book
        whole = book_from_parts(head, items.get(ref, []))
        bind.execute(
            sa.text("UPDATE monitor_customer_state SET book = :b WHERE customer_ref = :r"),
            {"b": json.dumps(whole), "r": ref},
        )
    op.drop_table("monitor_book_items")
