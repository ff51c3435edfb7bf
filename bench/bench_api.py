"""Latency of the main read endpoints and pages over a demo portfolio.

    .venv/bin/python bench/bench_api.py --customers 2000 --requests 200

Builds the demo portfolio (``riskdesk demo --no-serve --no-cycle``) in a temporary SQLite file,
then times requests in-process through FastAPI's TestClient (no network): the customer list,
one customer with exposure and history, the dashboard page and a customer page. Prints
p50/p95/p99 in milliseconds and requests per second (one client, sequential).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from riskdesk.api.app import create_app
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import Customer
from riskdesk.store.users import create_token


def timed(n: int, call: Callable[[int], int]) -> dict[str, float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        status = call(i)
        samples.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise SystemExit(f"unexpected status {status}")
    samples.sort()
    q = statistics.quantiles(samples, n=100)
    return {
        "p50_ms": round(q[49], 2),
        "p95_ms": round(q[94], 2),
        "p99_ms": round(q[98], 2),
        "rps": round(n / (sum(samples) / 1000), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_api_"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    riskdesk = str(Path(sys.executable).with_name("riskdesk"))
    t0 = time.perf_counter()
    subprocess.run(
        [
            riskdesk,
            "--db",
            url,
            "demo",
            "--customers",
            str(args.customers),
            "--no-serve",
            "--no-cycle",
            "--json",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    build_s = time.perf_counter() - t0
    eng = make_engine(url)
    with session_scope(eng) as s:
        token = create_token(s, "demo", name="bench").token
        ids = list(s.scalars(select(Customer.id)))
    eng.dispose()
    rnd = random.Random(7)
    client = TestClient(create_app(url))
    h = {"Authorization": f"Bearer {token}"}
    results: dict[str, object] = {"customers": len(ids), "demo_build_s": round(build_s, 1)}
    results["GET /api/v1/customers?limit=50&sort=-name"] = timed(
        args.requests,
        lambda i: (
            client.get(
                "/api/v1/customers",
                params={"limit": 50, "offset": (i * 50) % max(len(ids), 1), "sort": "-name"},
                headers=h,
            ).status_code
        ),
    )
    results["GET /api/v1/customers?q=..."] = timed(
        args.requests,
        lambda i: client.get("/api/v1/customers", params={"q": str(i % 10)}, headers=h).status_code,
    )
    results["GET /api/v1/customers/{id}"] = timed(
        args.requests,
        lambda i: client.get(f"/api/v1/customers/{rnd.choice(ids)}", headers=h).status_code,
    )
    # the pages, through a cookie session
    page = client.get("/login")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(
        "/login", data={"username": "demo", "password": "riskdesk-demo", "csrf_token": csrf}
    )
    n_pages = max(args.requests // 10, 10)
    results["GET / (dashboard page)"] = timed(n_pages, lambda i: client.get("/").status_code)
    results["GET /customers/{id} (page)"] = timed(
        n_pages, lambda i: client.get(f"/customers/{rnd.choice(ids)}").status_code
    )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
