"""Benchmark: identification over N customers with full history.

    .venv/bin/python bench/bench_identify.py [--customers 100000] [--seed 7] [--months 36]

The portfolio comes from the demo generator (``riskdesk.demo.generator``), converted straight
to the frames the detectors take (no database in the loop), so the figure is the detectors'
own cost: every detector, once, over the whole portfolio as of the last day, with evidence.
Prints rows, seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time

import pandas as pd
import pyarrow as pa

from riskdesk.analytics.frames import Frames
from riskdesk.identify.detectors import detect_all

RENAME: dict[str, tuple[str, dict[str, str], list[str]]] = {
    # frame: (generator table, renames, columns kept)
    "customers": (
        "customers",
        {"id": "customer_id"},
        [
            "customer_id",
            "external_id",
            "name",
            "parent_id",
            "group_code",
            "industry",
            "region",
            "country",
            "currency",
            "revenue",
            "employees",
            "founded_on",
            "market_share",
            "owner",
            "status",
            "created_at",
        ],
    ),
    "contracts": (
        "contracts",
        {"id": "contract_id"},
        [
            "contract_id",
            "external_id",
            "customer_id",
            "start_date",
            "end_date",
            "payment_terms_days",
            "min_volume_amount",
            "min_volume_currency",
            "min_volume_period",
            "status",
        ],
    ),
    "orders": (
        "orders",
        {"id": "order_id"},
        [
            "order_id",
            "external_id",
            "customer_id",
            "contract_id",
            "order_date",
            "amount",
            "currency",
            "status",
            "shipped_date",
        ],
    ),
    "invoices": (
        "invoices",
        {"id": "invoice_id"},
        [
            "invoice_id",
            "external_id",
            "customer_id",
            "order_id",
            "issue_date",
            "due_date",
            "amount",
            "currency",
            "disputed",
            "status",
        ],
    ),
    "payments": (
        "payments",
        {"id": "payment_id"},
        ["payment_id", "external_id", "customer_id", "payment_date", "amount", "currency"],
    ),
    "credit_notes": (
        "credit_notes",
        {"id": "credit_note_id"},
        [
            "credit_note_id",
            "external_id",
            "customer_id",
            "invoice_id",
            "issue_date",
            "amount",
            "currency",
        ],
    ),
    "market_indicators": (
        "market_indicators",
        {},
        ["code", "industry", "region", "period_date", "value"],
    ),
    "external_signals": (
        "external_signals",
        {"id": "signal_id"},
        ["signal_id", "customer_id", "kind", "signal_date", "value", "source", "description"],
    ),
    "fx_rates": ("fx_rates", {}, ["rate_date", "base", "quote", "rate"]),
}
DATES = {
    "founded_on",
    "created_at",
    "start_date",
    "end_date",
    "order_date",
    "shipped_date",
    "issue_date",
    "due_date",
    "payment_date",
    "period_date",
    "signal_date",
    "rate_date",
}
FLOATS = {"amount", "value", "rate", "min_volume_amount", "revenue", "market_share"}


def _frame(tab: pa.Table, renames: dict[str, str], keep: list[str]) -> pd.DataFrame:
    df = tab.to_pandas()
    df = df.rename(columns=renames)[keep]
    for c in keep:
        if c in DATES:
            df[c] = pd.to_datetime(df[c], utc=True).dt.tz_localize(None).astype("datetime64[ns]")
        elif c in FLOATS:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    if "disputed" in df:
        df["disputed"] = df["disputed"].astype(bool)
    return df


def frames_from_portfolio(tables: dict[str, pa.Table]) -> Frames:
    out = {name: _frame(tables[src], ren, keep) for name, (src, ren, keep) in RENAME.items()}
    alloc = tables["payment_allocations"].to_pandas().rename(columns={"id": "allocation_id"})
    pay = out["payments"][["payment_id", "payment_date", "customer_id"]]
    alloc = alloc.merge(pay, on="payment_id")
    alloc["amount"] = pd.to_numeric(alloc["amount"]).astype("float64")
    out["allocations"] = alloc[
        ["allocation_id", "payment_id", "invoice_id", "amount", "payment_date", "customer_id"]
    ]
    return Frames(**out)


def peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--months", type=int, default=36)
    args = ap.parse_args()

    from riskdesk.demo.generator import generate

    t0 = time.perf_counter()
    portfolio = generate(
        "manufacturer", customers=args.customers, seed=args.seed, months=args.months
    )
    as_of = portfolio.as_of
    frames = frames_from_portfolio(portfolio.tables)
    del portfolio
    gc.collect()
    t_gen = time.perf_counter() - t0
    rows = {f: len(getattr(frames, f)) for f in RENAME} | {"allocations": len(frames.allocations)}
    rss_before = peak_rss_mib()

    t1, c1 = time.perf_counter(), time.process_time()
    events = detect_all(frames, as_of)
    t_detect, c_detect = time.perf_counter() - t1, time.process_time() - c1

    print(f"customers           {args.customers:,}  (history {args.months} months, as of {as_of})")
    print(
        f"rows                invoices {rows['invoices']:,}, orders {rows['orders']:,}, "
        f"payments {rows['payments']:,}, allocations {rows['allocations']:,}, "
        f"signals {rows['external_signals']:,}"
    )
    print(f"generate + frames   {t_gen:.1f} s (not part of the measure)")
    print(
        f"identification      {t_detect:.2f} s wall, {c_detect:.2f} s CPU -> {len(events):,} "
        f"events ({args.customers / t_detect:,.0f} customers/s wall)"
    )
    print(
        "events by source    "
        + ", ".join(f"{k} {v:,}" for k, v in events["source"].value_counts().sort_index().items())
    )
    print(
        f"peak RSS            {peak_rss_mib():,.0f} MiB (after generation: {rss_before:,.0f} MiB)"
    )


if __name__ == "__main__":
    main()
