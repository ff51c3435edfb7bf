"""Vectorised dated FX conversion over the ``fx_rates`` frame (the same rule as ``FxTable``)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def rates_both_ways(fx: pd.DataFrame) -> pd.DataFrame:
    """Every rate and its inverse, sorted by date (columns ``rate_date, base, quote, rate``)."""
    cols = ["rate_date", "base", "quote", "rate"]
    if fx.empty:
        return pd.DataFrame(
            {
                "rate_date": pd.Series([], dtype="datetime64[ns]"),
                "base": pd.Series([], dtype="str"),
                "quote": pd.Series([], dtype="str"),
                "rate": pd.Series([], dtype="float64"),
            }
        )
    direct = fx[cols].copy()
    direct = direct[direct["rate"] > 0]
    inverse = direct.rename(columns={"base": "quote", "quote": "base"})
    inverse["rate"] = 1.0 / direct["rate"]
    out = pd.concat([direct, inverse[cols]], ignore_index=True)
    out["base"] = out["base"].astype(str).str.upper().astype("str")
    out["quote"] = out["quote"].astype(str).str.upper().astype("str")
    out["rate_date"] = out["rate_date"].astype("datetime64[ns]")
    return out.sort_values("rate_date", kind="stable").reset_index(drop=True)


def convert(
    amount: pd.Series | np.ndarray,
    src: pd.Series | np.ndarray,
    dst: pd.Series | np.ndarray,
    on: pd.Series | np.ndarray | pd.Timestamp,
    rates: pd.DataFrame,
) -> np.ndarray:
    """Convert ``amount`` from ``src`` to ``dst`` currency with the latest rate on or before ``on``.

    ``rates`` comes from :func:`rates_both_ways`. When no rate is known the amount is kept
    unconverted (a missing rate must not hide an overdue invoice).
    """
    values = np.asarray(amount, dtype="float64").copy()
    n = len(values)
    if n == 0:
        return values
    s = pd.Series(np.asarray(src, dtype=object)).fillna("").astype(str).str.upper().to_numpy()
    d = pd.Series(np.asarray(dst, dtype=object)).fillna("").astype(str).str.upper().to_numpy()
    need = (s != d) & (s != "") & (d != "")
    if not need.any() or rates.empty:
        return values
    if isinstance(on, pd.Timestamp):
        dates = np.full(n, on.to_datetime64()).astype("datetime64[ns]")
    else:
        dates = np.asarray(on, dtype="datetime64[ns]")
    idx = np.nonzero(need)[0]
    q = pd.DataFrame({"i": idx, "base": s[idx], "quote": d[idx], "on": dates[idx]})
    q = q.astype({"base": "str", "quote": "str"})
    q = q[q["on"].notna()].sort_values("on", kind="stable")
    if q.empty:
        return values
    m = pd.merge_asof(
        q, rates, left_on="on", right_on="rate_date", by=["base", "quote"], direction="backward"
    )
    rate = m["rate"].fillna(1.0).to_numpy()
    rows = m["i"].to_numpy()
    values[rows] = values[rows] * rate
    return values
