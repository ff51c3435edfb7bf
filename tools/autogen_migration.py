"""Draft an Alembic migration for tables not yet covered by any migration.

    .venv/bin/python tools/autogen_migration.py "message" REVISION_ID [DOWN_REVISION]

It migrates a scratch SQLite file to all heads, then autogenerates against the models. Other
people's unfinished models may show up in the draft: keep only your own tables.
"""

from __future__ import annotations

import os
import sys
import tempfile

from alembic import command

from riskdesk.store.db import alembic_config, make_engine, migrate


def main() -> None:
    message, rev_id = sys.argv[1], sys.argv[2]
    down = sys.argv[3] if len(sys.argv) > 3 else "0001_core"
    path = os.path.join(tempfile.mkdtemp(), "autogen.db")
    url = f"sqlite:///{path}"
    migrate(url)
    cfg = alembic_config(url)
    with make_engine(url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(
            cfg, message=message, autogenerate=True, rev_id=rev_id, head=down, splice=True
        )


if __name__ == "__main__":
    main()
