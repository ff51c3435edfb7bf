"""Instructions per event of the intake, counted by valgrind's callgrind: a measure that does
not move with the machine's load or speed, for comparing two versions of the code on a noisy
machine (the same code and inputs give the same count to within about 0.2 %).

One intake process on SQLite, batches of ``--batch``: a database with the benchmark's 2,000
customers and its first 8,000 events is made once (not counted), then each code version
(``--src DIR``, its ``src`` folder; default this checkout's) runs in a fresh copy under
callgrind: 600 events of warm-up (uncounted), then ``--events`` events counted. Only what runs
inside the counted call is collected (``--toggle-collect`` on the C function behind
``operator.call``), so start-up, imports and warm-up are left out. The count is user-space
instructions of the intake process, SQLite included (its checkpoints too: the background
checkpointer is off in the counted run, so SQLite's fallback checkpoint runs inline); the
kernel's work (the writes of a commit) is not in it. It takes about 2-3 minutes per version on a slow machine (callgrind runs
the code about 50 times slower); versions run side by side, one per core.

    .venv/bin/python bench/intake_instructions.py --batch 20 --src /tmp/old/src --src src
"""

from __future__ import annotations

import argparse
import operator
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PREPARED = 8_000
WARM = 600
CUSTOMERS = 2_000


def prepare(path: Path, n: int) -> None:
    """The starting database: the benchmark's customers and its first events (of the same
    stream the counted run takes its events from: the stream's dates depend on its length)."""
    import bench_events as be

    from riskdesk.store import monitor_repo
    from riskdesk.store.db import make_engine, session_scope

    url = be.fresh_db("sqlite", CUSTOMERS)
    events = be.make_events(PREPARED + WARM + n, CUSTOMERS)
    eng = make_engine(url)
    for i in range(0, PREPARED, 100):
        with session_scope(eng) as s:
            monitor_repo.ingest(s, events[i : i + 100], actor="bench")
    eng.dispose()
    shutil.copy(url.removeprefix("sqlite:///"), path)


def child(template: Path, batch: int, n: int) -> None:
    """The counted run (under callgrind): warm-up, then ``n`` events inside ``operator.call``."""
    import bench_events as be

    from riskdesk.store import db, monitor_repo
    from riskdesk.store.db import make_engine, session_scope

    # no background checkpoints: their thread would be counted too, as often as the slowed
    # clock lets it run (a spread of 5 % between runs of the same code). SQLite's own fallback
    # checkpoint then runs in the committing batch, at the same points on every run.
    db.CHECKPOINT_INTERVAL = 1e9
    try:  # the collector's settings of the intake's own processes (worker, events ingest)
        from riskdesk.connectors.events import tune_gc_for_worker
    except ImportError:  # (a version from before them)
        pass
    else:
        tune_gc_for_worker()
    work = Path(tempfile.mkdtemp()) / "intake.db"
    shutil.copy(template, work)
    eng = make_engine(f"sqlite:///{work}")
    events = be.make_events(PREPARED + WARM + n, CUSTOMERS)

    def run(evs: list[dict[str, object]]) -> None:
        for i in range(0, len(evs), batch):
            with session_scope(eng) as s:
                monitor_repo.ingest(s, evs[i : i + batch], actor="bench")

    run(events[PREPARED : PREPARED + WARM])
    operator.call(run, events[PREPARED + WARM :])
    eng.dispose()


def count(src: str, template: Path, batch: int, n: int) -> int:
    out = Path(tempfile.mkdtemp()) / "callgrind.out"
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve()), "PYTHONHASHSEED": "0"}
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--toggle-collect=_operator_call",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        str(template),
        "--batch",
        str(batch),
        "--events",
        str(n),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{src}: callgrind run failed:\n{done.stderr[-2000:]}")
    shutil.rmtree(out.parent, ignore_errors=True)
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--src", action="append", help="a code version's src folder (repeatable)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a.child, a.batch, a.events)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    srcs = a.src or [str(HERE.parent / "src")]
    template = Path(tempfile.mkdtemp()) / "template.db"
    prepare(template, a.events)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = list(pool.map(lambda s: count(s, template, a.batch, a.events), srcs))
    for src, n in zip(srcs, counts, strict=True):
        print(
            {
                "src": src,
                "batch": a.batch,
                "events": a.events,
                "instructions": n,
                "per_event": round(n / a.events),
            }
        )


if __name__ == "__main__":
    main()
