"""Join the stage branches (identify, assess, rating, control, monitor) into one head.

Each stage added its tables on its own branch from 0001_core; from here on, migrations form
one line again.

Revision ID: 0002_merge
Revises: identify_0001, assess_0001, rating_0001, control_0001, monitor_0001
"""

from collections.abc import Sequence

revision: str = "0002_merge"
down_revision: str | Sequence[str] | None = (
    "identify_0001",
    "assess_0001",
    "rating_0001",
    "control_0001",
    "monitor_0001",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
