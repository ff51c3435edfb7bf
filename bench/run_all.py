"""Run every ``bench/bench_*.py`` with small sizes and print what each one prints.

    .venv/bin/python bench/run_all.py            # all benchmarks, small sizes
    .venv/bin/python bench/run_all.py demo       # only those whose name contains "demo"

Sizes: a benchmark listed in ``SMALL`` gets those arguments; any other gets small values for
the size options its ``--help`` mentions (``--customers``, ``--rows``, ``--events`` …, see
``GENERIC``), or ``--quick`` when it offers that. Benchmarks print numbers; a failing one is
reported and the others still run. Exit status is 1 when any benchmark failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 900

SMALL: dict[str, list[str]] = {
    "bench_demo.py": ["--customers", "5000"],
    "bench_import.py": ["--rows", "20000", "--customers", "1000"],
}
GENERIC: dict[str, str] = {
    "--customers": "2000",
    "--rows": "20000",
    "--invoices": "20000",
    "--events": "5000",
    "--requests": "500",
    "--orders": "2000",
    "--seconds": "5",
    "--duration": "5",
    "--n": "2000",
}


def small_args(script: Path) -> list[str]:
    if script.name in SMALL:
        return SMALL[script.name]
    try:
        help_text = subprocess.run(
            [sys.executable, str(script), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=HERE.parent,
        ).stdout
    except subprocess.TimeoutExpired:
        return []
    if "--quick" in help_text:
        return ["--quick"]
    args: list[str] = []
    for option, value in GENERIC.items():
        if option in help_text.split():
            args += [option, value]
    return args


def main(argv: list[str]) -> int:
    wanted = argv[1:]
    scripts = sorted(HERE.glob("bench_*.py"))
    if wanted:
        scripts = [s for s in scripts if any(w in s.name for w in wanted)]
    failed: list[str] = []
    for script in scripts:
        args = small_args(script)
        print(f"=== {script.name} {' '.join(args)}", flush=True)
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, str(script), *args],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                cwd=HERE.parent,
            )
        except subprocess.TimeoutExpired:
            print(f"    timed out after {TIMEOUT_S} s", flush=True)
            failed.append(script.name)
            continue
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            sys.stdout.write(proc.stderr[-4000:])
            failed.append(script.name)
        print(
            f"--- {script.name}: exit {proc.returncode} in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    print(
        f"{len(scripts) - len(failed)} of {len(scripts)} benchmarks ran; failed: {failed or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
