"""monitor: the customer state's book compressed with LZ4 on PostgreSQL

The intake rewrites a customer's book (its open and recently paid invoices, orders and
signals, a JSON text) with every event of the customer. A customer with a history has a book
of several KB, which PostgreSQL compresses before storing it (TOAST, from about 2 KB), with
``pglz`` by default: on ``bench_events.py --via direct --history 100 --days 30`` (books of
3.0 KB on average) PostgreSQL's CPU per event was about 105–110 µs, against about 45 with
small books, which are not compressed. LZ4 compresses a little less but several times faster:
about 61–64 µs per event there (``docs/benchmarks.md``, "Session 16"). Keeping the books
uncompressed instead (stored inline or out of line) saved as much CPU in a trial, but
lengthened the p99 latency of a batch (more WAL to write).

Applied only where the server was built with LZ4 (``default_toast_compression`` offers it:
PostgreSQL 14 and newer, as Debian, Ubuntu, the official images and most builds are);
elsewhere the column keeps the server's default. It changes how values written from now on
are stored; the stored books change as the intake rewrites them (nothing is rewritten now).
SQLite does not compress: nothing changes there.

Revision ID: 0007_monitor_book_lz4
Revises: 0006_monitor_docs_text
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0007_monitor_book_lz4"
down_revision: str | Sequence[str] | None = "0006_monitor_docs_text"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    found = bind.execute(
        text(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
            "AND 'lz4' = ANY(enumvals)"
        )
    ).first()
    return found is not None


def upgrade() -> None:
    if _lz4_available():
        op.execute("ALTER TABLE monitor_customer_state ALTER COLUMN book SET COMPRESSION lz4")


def downgrade() -> None:
    if _lz4_available():
        op.execute("ALTER TABLE monitor_customer_state ALTER COLUMN book SET COMPRESSION DEFAULT")
