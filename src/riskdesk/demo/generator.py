"""Synthetic customer portfolios, generated with array operations (no per-row Python loops).

Behaviour model (see ``docs/demo.md``):

* every customer has a latent risk factor ``z ~ N(0, 1)`` (members of a group share part of
  it); its annual default probability in normal times is ``logistic(base + slope * z)``;
* industry (and regional) market indices follow random walks; one or two industries go
  through a downturn, which multiplies the default hazard, slows payments and shrinks orders;
* the default month is drawn from the resulting monthly hazards (a survival draw); the
  customer shows it 3–9 months ahead: orders shrink, payments slow and become partial,
  disputes rise and the bureau score drops; after the default date it stops ordering and
  paying, and its open invoices stay open;
* defaults are simulated 12 months past ``as_of``, so the ground truth also names customers
  that are heading for default but have not defaulted yet on ``as_of``.

Everything comes from one ``numpy.random.Generator`` seeded with ``seed``: the same arguments
give the same tables. Output is a :class:`Portfolio` of Arrow tables named and typed like the
database tables, ready for :func:`riskdesk.store.bulk.bulk_load`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from riskdesk.demo.cases import CASES, Case
from riskdesk.domain.enums import CLAUSES

DEFAULT_AS_OF = date(2026, 9, 30)
HISTORY_MONTHS = 36
FUTURE_MONTHS = 12
BLOCK_SIZE = 50_000  # customers generated at once (bounds memory)
NO_DATE = np.int64(10**7)  # "never": far beyond any real day number

LOAD_ORDER = (
    "customers",
    "contracts",
    "orders",
    "invoices",
    "payments",
    "payment_allocations",
    "credit_notes",
    "market_indicators",
    "external_signals",
    "fx_rates",
    "demo_truth",
)

FX_START = {"EUR": 1.0, "USD": 1.08, "CNY": 7.8}

_NAMES = {
    "cn": (
        "Huaxin Jinlong Hengtai Zhongda Xinghe Tianrui Baosheng Haitong Ruifeng Dongfang "
        "Changjiang Minsheng Hongda Jiahe Yongfeng Shengshi Lianhua Kaixuan Fuhua Boyuan",
        "Shanghai Suzhou Ningbo Hangzhou Shenzhen Dongguan Foshan Tianjin Qingdao Wuxi "
        "Xiamen Hefei Jinan Changzhou",
    ),
    "eu": (
        "Müller Schmidt Rossi Dubois Nowak Jansen Fischer Bianchi Weber Lefèvre Kowalski "
        "Visser Hoffmann Ricci Moreau Becker",
        "Rhein Alpen Nord Süd Baltic Adria Loire Danube Elbe Po Main Ruhr",
    ),
    "na": (
        "Apex Summit Pioneer Liberty Keystone Cascade Frontier Heritage Lakeside Evergreen "
        "Ironwood Bluewater",
        "Valley Ridge Harbor Prairie Bay Mountain Coastal Great Lakes Midwest Gulf",
    ),
}
_SUFFIX = {
    "CN": ("Co., Ltd.",),
    "DE": ("GmbH", "AG"),
    "AT": ("GmbH",),
    "FR": ("SAS", "SA"),
    "IT": ("S.p.A.", "S.r.l."),
    "NL": ("B.V.",),
    "PL": ("Sp. z o.o.",),
    "US": ("Inc.", "LLC", "Corp."),
    "CA": ("Ltd.", "Inc."),
    "MX": ("S.A. de C.V.",),
}
_LEGAL = (
    "Lawsuit filed by a supplier over unpaid invoices",
    "Court enforcement order registered",
    "Tax authority lien registered",
    "Labour arbitration case opened",
)
_METHODS = ("bank_transfer", "bank_acceptance_bill", "cheque")

Progress = Callable[[str], None]


@dataclass
class Portfolio:
    """A generated portfolio: Arrow tables by database table name, plus a summary."""

    case: str
    seed: int
    as_of: date
    tables: dict[str, pa.Table]
    summary: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {name: int(t.num_rows) for name, t in self.tables.items()}


# ---------------------------------------------------------------------------------- helpers


def _day(d: date) -> np.int64:
    return np.int64(np.datetime64(d, "D").astype(np.int64))


def _dates(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    arr = np.asarray(days, dtype=np.int64)
    if valid is None:
        return pa.array(arr.astype("datetime64[D]"))
    safe = np.where(valid, arr, 0)
    return pa.array(safe.astype("datetime64[D]"), mask=~valid)


def _code(prefix: str, ids: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(
        pc.cast(pa.array(np.asarray(ids, dtype=np.int64)), pa.string()), width, "0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def _pick(options: tuple[Any, ...] | list[Any], idx: np.ndarray) -> pa.Array:
    """``options[idx]`` as an Arrow string array."""
    return pa.array(np.array(options, dtype=object)[idx], type=pa.string())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _month_index(days: np.ndarray) -> np.ndarray:
    """Calendar months since 1970-01 of day numbers."""
    return (
        np.asarray(days, dtype=np.int64)
        .astype("datetime64[D]")
        .astype("datetime64[M]")
        .astype(np.int64)
    )


def _month_start(months: np.ndarray) -> np.ndarray:
    return (
        np.asarray(months, dtype=np.int64)
        .astype("datetime64[M]")
        .astype("datetime64[D]")
        .astype(np.int64)
    )


def _warning(day: np.ndarray, warn_start: np.ndarray, default_day: np.ndarray) -> np.ndarray:
    """0 before the warning period, rising to 1 at the default date (0 for non-defaulters)."""
    span = np.maximum(default_day - warn_start, 1)
    w = (day - warn_start) / span
    return np.clip(w, 0.0, 1.0) * (default_day < NO_DATE)


# -------------------------------------------------------------------------------- generator


def generate(
    case: str | Case = "manufacturer",
    customers: int | None = None,
    seed: int = 7,
    as_of: date = DEFAULT_AS_OF,
    *,
    months: int = HISTORY_MONTHS,
    progress: Progress | None = None,
    block_size: int = BLOCK_SIZE,
) -> Portfolio:
    """Generate a portfolio for ``case`` with ``customers`` customers, ending on ``as_of``.

    The whole portfolio is held in memory; for very large portfolios iterate over
    :func:`generate_parts` instead (same data, one block of customers at a time).
    """
    parts = list(
        generate_parts(
            case, customers, seed, as_of, months=months, progress=progress, block_size=block_size
        )
    )
    tables = {name: pa.concat_tables([p.tables[name] for p in parts]) for name in parts[0].tables}
    first = parts[0]
    return Portfolio(first.case, seed, as_of, tables, combine_summaries([p.summary for p in parts]))


def generate_parts(
    case: str | Case = "manufacturer",
    customers: int | None = None,
    seed: int = 7,
    as_of: date = DEFAULT_AS_OF,
    *,
    months: int = HISTORY_MONTHS,
    progress: Progress | None = None,
    block_size: int = BLOCK_SIZE,
) -> Iterator[Portfolio]:
    """The portfolio in parts of at most ``block_size`` customers each, ids continuing.

    The first part also carries the market indicators and FX rates. Memory stays bounded by
    one block, so a million customers can be generated and loaded part by part. The data
    depends on ``block_size`` (each block has its own random stream); keep the default.
    """
    spec = CASES[case] if isinstance(case, str) else case
    n = int(customers if customers is not None else spec.default_customers)
    if n < 1:
        raise ValueError("a portfolio needs at least one customer")
    if months < 6:
        raise ValueError("a portfolio needs at least 6 months of history")
    if block_size < 1:
        raise ValueError("block_size must be positive")
    note = progress or (lambda _msg: None)
    note("market indices")
    mk = _markets(spec, np.random.default_rng([seed, 0]), as_of, months)
    off = dict.fromkeys(LOAD_ORDER, 0)
    group_off = 0
    blocks = (n + block_size - 1) // block_size
    for b in range(blocks):
        nb = min(block_size, n - b * block_size)
        prefix = f"block {b + 1}/{blocks}: " if blocks > 1 else ""

        def block_note(msg: str, _p: str = prefix) -> None:
            note(_p + msg)

        tables, stats = _block(
            spec, mk, np.random.default_rng([seed, 1, b]), nb, off, group_off, block_note
        )
        tables["market_indicators"] = mk.market_t if b == 0 else mk.market_t.slice(0, 0)
        tables["fx_rates"] = mk.fx_t if b == 0 else mk.fx_t.slice(0, 0)
        for name in LOAD_ORDER:
            off[name] += tables[name].num_rows
        group_off += int(stats.pop("groups"))
        stats["downturn_industries"] = [spec.industries[j].code for j in mk.downturn]
        stats["history_years"] = round(float((mk.as_of_d - mk.hist_start + 1) / 365.25), 2)
        stats["history_start"] = str(np.datetime64(int(mk.hist_start), "D"))
        yield Portfolio(spec.name, seed, as_of, {k: tables[k] for k in LOAD_ORDER}, stats)


def combine_summaries(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary from the summaries of the parts of a portfolio."""
    total = {
        k: sum(p[k] for p in parts)
        for k in (
            "customers",
            "defaults",
            "future_defaults",
            "defaults_in_history",
            "alive_years",
            "contract_breaches",
        )
    }
    return {
        "customers": total["customers"],
        "defaults": total["defaults"],
        "future_defaults": total["future_defaults"],
        "default_rate_per_year": round(
            total["defaults_in_history"] / max(total["alive_years"], 1e-9), 4
        ),
        "contract_breaches": total["contract_breaches"],
        "downturn_industries": parts[0]["downturn_industries"],
        "history_years": parts[0]["history_years"],
        "history_start": parts[0]["history_start"],
    }


@dataclass
class _Markets:
    """What every block of customers shares: the calendar, market indices and FX rates."""

    months: int
    as_of_d: np.int64
    first_month: np.int64
    n_t: int
    m_start: np.ndarray
    m_len: np.ndarray
    hist_start: np.int64
    moy: np.ndarray
    ind_dip: np.ndarray
    reg_dip: np.ndarray
    downturn: np.ndarray
    market_t: pa.Table
    fx_t: pa.Table


def _markets(spec: Case, rng: np.random.Generator, as_of: date, months: int) -> _Markets:
    n_h = months
    # ---------------------------------------------------------------- calendar and markets
    as_of_d = _day(as_of)
    first_month = _month_index(np.array([as_of_d]))[0] - (months - 1)
    n_t = months + FUTURE_MONTHS
    m_abs = first_month + np.arange(n_t + 1)
    m_start = _month_start(m_abs)
    m_len = np.diff(m_start)
    m_start = m_start[:-1]
    hist_start = m_start[0]
    moy = (m_abs[:-1] % 12) + 1  # month of year 1..12

    n_ind = len(spec.industries)
    n_reg = len(spec.regions)
    t = np.arange(n_t)

    def dip(depth: float, start: int) -> np.ndarray:
        fall = np.clip((t - start) / 8.0, 0.0, 1.0)
        recover = np.clip((t - start - 14) / 14.0, 0.0, 1.0) * 0.5
        return depth * fall * (1.0 - recover)

    ind_dip = np.zeros((n_ind, n_t))
    n_down = int(rng.integers(1, 3))
    downturn = np.sort(rng.choice(n_ind, size=n_down, replace=False))
    for j in downturn:  # one or two industries
        ind_dip[j] = dip(
            float(rng.uniform(0.2, 0.35)), int(rng.integers(months // 3, months * 2 // 3))
        )
    ind_walk = np.cumsum(rng.normal(0.003, 0.015, size=(n_ind, n_t)), axis=1)
    ind_index = 100.0 * np.exp(ind_walk - ind_walk[:, :1]) * (1.0 - ind_dip)
    reg_dip = np.zeros((n_reg, n_t))
    slow_region = int(rng.integers(0, n_reg))
    reg_dip[slow_region] = dip(
        float(rng.uniform(0.05, 0.12)), int(rng.integers(months // 4, months // 2))
    )
    reg_walk = np.cumsum(rng.normal(0.002, 0.01, size=(n_reg, n_t)), axis=1)
    reg_index = 100.0 * np.exp(reg_walk - reg_walk[:, :1]) * (1.0 - reg_dip)

    # ------------------------------------------------------------------ market indicators
    codes: list[str] = []
    labels: list[str] = []
    inds: list[str | None] = []
    regs: list[str | None] = []
    for x in spec.industries:
        codes.append(f"IDX_{x.code.upper()}")
        labels.append(f"{x.label} market index")
        inds.append(x.code)
        regs.append(None)
    for r in spec.regions:
        codes.append(f"IDX_REGION_{r.code}")
        labels.append(f"{r.name} business climate index")
        inds.append(None)
        regs.append(r.name)
    values = np.round(np.vstack([ind_index[:, :n_h], reg_index[:, :n_h]]), 4)
    n_codes = len(codes)
    row_code = np.repeat(np.arange(n_codes), n_h)
    row_m = np.tile(np.arange(n_h), n_codes)
    market_t = pa.table(
        {
            "id": pa.array(np.arange(1, n_codes * n_h + 1, dtype=np.int64)),
            "code": _pick(codes, row_code),
            "name": _pick(labels, row_code),
            "industry": pa.array(np.array(inds, dtype=object)[row_code], type=pa.string()),
            "region": pa.array(np.array(regs, dtype=object)[row_code], type=pa.string()),
            "period_date": _dates(m_start[row_m]),
            "value": pa.array(values.ravel()),
        }
    )

    # --------------------------------------------------------------------------- fx rates
    fx_days = np.arange(hist_start - 31, as_of_d + 1, dtype=np.int64)
    nd = fx_days.size
    eur_cny = FX_START["CNY"] * np.exp(np.cumsum(rng.normal(0, 0.004, size=nd)))
    eur_usd = FX_START["USD"] * np.exp(np.cumsum(rng.normal(0, 0.005, size=nd)))
    usd_cny = eur_cny / eur_usd
    fx_t = pa.table(
        {
            "id": pa.array(np.arange(1, 3 * nd + 1, dtype=np.int64)),
            "rate_date": _dates(np.repeat(fx_days, 3)),
            "base": _pick(("EUR", "EUR", "USD"), np.tile(np.arange(3), nd)),
            "quote": _pick(("CNY", "USD", "CNY"), np.tile(np.arange(3), nd)),
            "rate": pa.array(np.round(np.column_stack([eur_cny, eur_usd, usd_cny]).ravel(), 6)),
        }
    )

    return _Markets(
        months,
        as_of_d,
        first_month,
        n_t,
        m_start,
        m_len,
        hist_start,
        moy,
        ind_dip,
        reg_dip,
        downturn,
        market_t,
        fx_t,
    )


def _block(
    spec: Case,
    mk: _Markets,
    rng: np.random.Generator,
    n: int,
    off: dict[str, int],
    group_off: int,
    note: Progress,
) -> tuple[dict[str, pa.Table], dict[str, Any]]:
    """Customers ``off['customers'] + 1 …`` with their whole history (ids continue ``off``)."""
    pfx = spec.prefix
    months, as_of_d, first_month = mk.months, mk.as_of_d, mk.first_month
    m_start, m_len, hist_start, moy = mk.m_start, mk.m_len, mk.hist_start, mk.moy
    ind_dip, reg_dip, downturn = mk.ind_dip, mk.reg_dip, mk.downturn
    n_ind = len(spec.industries)
    n_reg = len(spec.regions)
    off_c = off["customers"]
    # ------------------------------------------------------------------------- customers
    note("customers")
    ind = rng.choice(
        n_ind,
        size=n,
        p=np.array([x.weight for x in spec.industries]) / sum(x.weight for x in spec.industries),
    )
    reg = rng.choice(
        n_reg,
        size=n,
        p=np.array([r.weight for r in spec.regions]) / sum(r.weight for r in spec.regions),
    )
    n_grp = int(n * spec.group_share) if n >= 20 else 0
    perm = rng.permutation(n)
    parents = perm[:n_grp]
    k = min(int(n_grp * spec.members_per_group), n - n_grp) if n_grp else 0
    members = perm[n_grp : n_grp + k]
    member_group = rng.integers(0, max(n_grp, 1), size=k)
    group_of = np.full(n, -1, dtype=np.int64)
    group_of[parents] = np.arange(n_grp)
    group_of[members] = member_group
    parent_idx = np.full(n, -1, dtype=np.int64)
    parent_idx[members] = parents[member_group]
    ind[members] = ind[parents[member_group]]
    reg[members] = reg[parents[member_group]]

    z = rng.normal(size=n)
    g_factor = rng.normal(size=max(n_grp, 1))
    in_group = group_of >= 0
    z[in_group] = 0.7 * z[in_group] + 0.71 * g_factor[group_of[in_group]]
    annual_pd = _sigmoid(spec.base_logit + spec.risk_slope * z)

    existing = rng.random(n) < 0.75
    span_days = int(as_of_d - hist_start)
    onboard = np.where(
        existing,
        hist_start - rng.integers(30, 365 * 8, size=n),
        hist_start + rng.integers(0, max(int(span_days * 0.85), 1), size=n),
    ).astype(np.int64)

    # ---------------------------------------------------------------------- default draw
    note("defaults")
    stress = (ind_dip[ind] + reg_dip[reg]).astype(np.float32)  # n x n_t
    h = -np.log1p(-annual_pd) / 12.0
    seasoned = m_start[None, :] >= (onboard[:, None] + 120)
    hazard = (h[:, None] * np.exp(4.0 * stress) * seasoned).astype(np.float32)
    cum = np.cumsum(hazard, axis=1)
    del hazard, seasoned
    threshold = rng.exponential(size=n)
    hit = cum > threshold[:, None]
    del cum
    defaults = hit[:, -1]
    m_def = np.argmax(hit, axis=1)
    del hit
    def_day = m_start[m_def] + np.floor(rng.random(n) * m_len[m_def]).astype(np.int64)
    default_day = np.where(defaults, def_day, NO_DATE).astype(np.int64)
    lead_months = rng.integers(3, 10, size=n)
    warn_start = np.where(
        defaults, default_day - np.round(lead_months * 30.44).astype(np.int64), NO_DATE
    )
    observed = default_day <= as_of_d

    # ------------------------------------------------------------------- customer table
    fx0 = np.array([FX_START[r.currency] for r in spec.regions])[reg]
    volume_eur = spec.order_eur * spec.orders_per_month * 12 * rng.lognormal(-0.32, 0.8, size=n)
    lam = spec.orders_per_month * rng.lognormal(-0.08, 0.4, size=n)
    order_size = volume_eur / (12 * lam)
    revenue = np.round(volume_eur * fx0 * rng.uniform(15, 150, size=n), -3)
    employees = np.maximum(3, (revenue / fx0 / rng.uniform(120_000, 400_000, size=n))).astype(
        np.int64
    )

    styles = np.array([r.style for r in spec.regions])[reg]
    country_idx = np.zeros(n, dtype=np.int64)
    countries: list[str] = []
    offsets = []
    for r in spec.regions:
        offsets.append(len(countries))
        countries.extend(r.countries)
    u = rng.random(n)
    for ri, r in enumerate(spec.regions):  # per region (a handful), not per customer
        sel = reg == ri
        cw = np.cumsum(np.array(r.country_weights) / sum(r.country_weights))
        country_idx[sel] = offsets[ri] + np.minimum(np.searchsorted(cw, u[sel]), len(cw) - 1)
    country = np.array(countries, dtype=object)[country_idx]

    names = np.empty(n, dtype=object)
    a_pick = rng.integers(0, 1 << 30, size=n)
    b_pick = rng.integers(0, 1 << 30, size=n)
    s_pick = rng.integers(0, 1 << 30, size=n)
    words = np.array([x.word for x in spec.industries], dtype=object)[ind]
    for style, (first, second) in _NAMES.items():
        sel = styles == style
        if not sel.any():
            continue
        fa = np.array(first.split(), dtype=object)
        sa = np.array(second.split(), dtype=object)
        names[sel] = fa[a_pick[sel] % len(fa)] + " " + sa[b_pick[sel] % len(sa)] + " " + words[sel]
    store_words = np.array(spec.store_words, dtype=object)
    suffix = np.empty(n, dtype=object)
    for cc in np.unique(country):
        sel = country == cc
        opts = np.array(_SUFFIX.get(str(cc), ("Ltd.",)), dtype=object)
        suffix[sel] = opts[s_pick[sel] % len(opts)]
    if spec.name == "retailer":
        suffix = np.where(
            in_group & (parent_idx < 0), "Chain " + suffix, store_words[s_pick % len(store_words)]
        )
    names = names + " " + suffix

    owners: list[str] = []
    o_off = []
    for r in spec.regions:
        o_off.append(len(owners))
        owners.extend(r.owners)
    o_cnt = np.array([len(r.owners) for r in spec.regions])
    owner_idx = np.array(o_off)[reg] + (rng.integers(0, 1 << 30, size=n) % o_cnt[reg])
    owner_idx[members] = owner_idx[parents[member_group]]
    owner = np.array(owners, dtype=object)[owner_idx]

    ids = np.arange(1, n + 1, dtype=np.int64) + off_c
    group_codes = pc.if_else(
        pa.array(in_group),
        _code(f"{pfx}G", np.maximum(group_of, 0) + 1 + group_off, 5),
        pa.nulls(n, pa.string()),
    )
    currency = np.array([r.currency for r in spec.regions], dtype=object)[reg]
    founded = (
        np.datetime64("1965-01-01").astype(np.int64) + rng.integers(0, 55 * 365, size=n)
    ).astype(np.int64)
    founded = np.minimum(founded, onboard - 180)
    crm = rng.random(n) < 0.7
    customers_t = pa.table(
        {
            "id": pa.array(ids),
            "external_id": _code(f"{pfx}C", ids, 7),
            "name": pa.array(names, type=pa.string()),
            "legal_id": pc.binary_join_element_wise(
                pa.array(country, type=pa.string()),
                _code("", rng.integers(10**8, 10**9, size=n), 9),
                "",
            ),
            "parent_id": pa.array(
                np.where(parent_idx >= 0, parent_idx + 1 + off_c, 0), mask=parent_idx < 0
            ),
            "group_code": group_codes,
            "industry": pa.array(
                np.array([x.code for x in spec.industries], dtype=object)[ind], type=pa.string()
            ),
            "region": pa.array(
                np.array([r.name for r in spec.regions], dtype=object)[reg], type=pa.string()
            ),
            "country": pa.array(country, type=pa.string()),
            "currency": pa.array(currency, type=pa.string()),
            "revenue": pa.array(revenue),
            "employees": pa.array(employees),
            "founded_on": _dates(founded),
            "market_share": pa.array(
                np.round(np.clip(rng.lognormal(-4.5, 1.0, size=n), 0.0001, 0.4), 4)
            ),
            "owner": pa.array(owner, type=pa.string()),
            "status": pa.array(
                np.where(observed, "defaulted", "active").astype(object), type=pa.string()
            ),
            "crm_id": pc.if_else(pa.array(crm), _code("ZC", ids, 8), pa.nulls(n, pa.string())),
            "erp_id": _code("ERP", ids, 8),
            "created_at": pa.array(
                (onboard.astype("datetime64[D]").astype("datetime64[us]")), type=pa.timestamp("us")
            ).cast(pa.timestamp("us", tz="UTC")),
        }
    )

    # ------------------------------------------------------------------------- contracts
    note("contracts")
    terms = np.array(spec.terms)[
        rng.choice(
            len(spec.terms), size=n, p=np.array(spec.terms_weights) / sum(spec.terms_weights)
        )
    ]
    has_min = rng.random(n) < spec.min_volume_share
    quarterly = (rng.random(n) < 0.4) & (lam * 3 >= 5)  # quarterly only for steady buyers
    period_months = np.where(quarterly, 3, 12)
    expected = lam * order_size * fx0 * period_months
    min_amount = np.maximum(np.round(expected * rng.uniform(0.35, 0.7, size=n), -3), 1000.0)
    sz = _sigmoid(z)
    clause_p = {
        "retention_of_title": 0.55 + 0.0 * sz,
        "late_interest": 0.45 + 0.0 * sz,
        "guarantee": 0.05 + 0.35 * sz,
        "letter_of_credit": np.where(currency == "CNY", 0.02, 0.10),
        "prepayment": 0.01 + 0.06 * sz,
        "cross_default": 0.10 + 0.10 * sz,
    }
    mask = np.zeros(n, dtype=np.int64)
    for bit, clause in enumerate(CLAUSES):
        on = has_min if clause == "minimum_volume" else rng.random(n) < clause_p[clause]
        mask |= on.astype(np.int64) << bit
    clause_json = np.array(
        [
            json.dumps([c for b, c in enumerate(CLAUSES) if m >> b & 1])
            for m in range(1 << len(CLAUSES))
        ],
        dtype=object,
    )
    discount = rng.random(n) < 0.15
    terms_text = np.array(
        [f"Net {d} days" for d in spec.terms] + [f"2% 10, net {d} days" for d in spec.terms],
        dtype=object,
    )[np.searchsorted(np.array(spec.terms), terms) + discount * len(spec.terms)]
    end_known = rng.random(n) < 0.5
    end_day = as_of_d + rng.integers(30, 730, size=n)
    contracts_t = pa.table(
        {
            "id": pa.array(ids),
            "external_id": _code(f"{pfx}K", ids, 7),
            "customer_id": pa.array(ids),
            "start_date": _dates(onboard),
            "end_date": _dates(end_day, end_known & ~observed),
            "payment_terms_days": pa.array(terms.astype(np.int64)),
            "credit_terms": pa.array(terms_text, type=pa.string()),
            "min_volume_amount": pa.array(min_amount, mask=~has_min),
            "min_volume_currency": pc.if_else(
                pa.array(has_min), pa.array(currency, type=pa.string()), pa.nulls(n, pa.string())
            ),
            "min_volume_period": pa.array(
                np.where(quarterly, "quarter", "year").astype(object),
                mask=~has_min,
                type=pa.string(),
            ),
            "clauses": pa.array(clause_json[mask], type=pa.string()),
            "status": pa.array(
                np.where(observed, "terminated", "active").astype(object), type=pa.string()
            ),
        }
    )

    # ---------------------------------------------------------------------------- orders
    note("orders")
    n_h = months
    mid = m_start[:n_h] + m_len[:n_h] // 2
    season = 1.0 + spec.seasonality * np.cos(2 * np.pi * (moy[:n_h] - 12) / 12.0)
    rate = (
        lam[:, None]
        * season[None, :]
        * (1.0 - 0.7 * _warning(mid[None, :], warn_start[:, None], default_day[:, None]))
        * (1.0 - 0.8 * stress[:, :n_h])
    )
    alive = (m_start[None, :n_h] + m_len[None, :n_h] > onboard[:, None]) & (
        m_start[None, :n_h] < default_day[:, None]
    )
    counts = rng.poisson(rate * alive)
    del rate, alive
    cell = np.repeat(np.arange(n * n_h, dtype=np.int64), counts.ravel())
    del counts
    oc = cell // n_h
    om = cell % n_h
    del cell
    oday = m_start[om] + np.floor(rng.random(oc.size) * m_len[om]).astype(np.int64)
    keep = (oday >= onboard[oc]) & (oday < default_day[oc]) & (oday <= as_of_d)
    oc, om, oday = oc[keep], om[keep], oday[keep]
    order = np.lexsort((oc, oday))
    oc, om, oday = oc[order], om[order], oday[order]
    del order, keep
    no = oc.size
    ow = _warning(oday, warn_start[oc], default_day[oc])
    ostress = stress[oc, om]
    oamount = np.round(
        order_size[oc]
        * fx0[oc]
        * rng.lognormal(-0.125, 0.5, size=no)
        * (1.0 - 0.5 * ow)
        * (1.0 - 0.4 * ostress),
        2,
    )
    oamount = np.maximum(oamount, 10.0)
    cancelled = rng.random(no) < 0.01
    shipped = oday + rng.integers(1, 8, size=no)
    is_shipped = (~cancelled) & (shipped <= as_of_d)
    ostatus = np.where(cancelled, "cancelled", np.where(is_shipped, "invoiced", "open")).astype(
        object
    )
    oids = np.arange(1, no + 1, dtype=np.int64) + off["orders"]
    orders_t = pa.table(
        {
            "id": pa.array(oids),
            "external_id": _code(f"{pfx}O", oids, 9),
            "customer_id": pa.array(oc + 1 + off_c),
            "contract_id": pa.array(oc + 1 + off_c),
            "order_date": _dates(oday),
            "amount": pa.array(oamount),
            "currency": pa.array(currency[oc], type=pa.string()),
            "status": pa.array(ostatus, type=pa.string()),
            "shipped_date": _dates(shipped, is_shipped),
        }
    )

    # -------------------------------------------------------------------------- invoices
    note("invoices and payments")
    inv_o = np.flatnonzero(is_shipped)
    ni = inv_o.size
    ic = oc[inv_o]
    issue = shipped[inv_o]
    due = issue + terms[ic]
    iamount = oamount[inv_o]
    iw = _warning(issue, warn_start[ic], default_day[ic])
    istress = ostress[inv_o].astype(np.float64)
    isz = sz[ic]
    disputed = rng.random(ni) < (0.01 + 0.03 * isz + 0.25 * iw + 0.05 * istress)
    base_delay = 8.0 * np.exp(0.6 * z) - 6.0 + rng.normal(0, 2.0, size=n)
    delay = (
        base_delay[ic]
        + 45.0 * iw
        + 30.0 * istress
        + rng.gamma(2.0, 3.0, size=ni)
        - 4.0
        + disputed * rng.integers(20, 90, size=ni)
    )
    pay1 = np.maximum(issue + 1, due + np.round(delay).astype(np.int64))
    partial = rng.random(ni) < (0.03 + 0.06 * isz + 0.45 * iw + 0.10 * istress)
    frac = np.where(partial, rng.uniform(0.3, 0.8, size=ni), 1.0)
    has_cn = rng.random(ni) < (0.012 + 0.4 * disputed)
    cn_frac = np.where(disputed, rng.uniform(0.05, 0.3, size=ni), rng.uniform(0.02, 0.15, size=ni))
    cn_amount = np.where(has_cn, np.round(iamount * cn_frac, 2), 0.0)
    cn_day = issue + np.where(
        disputed, rng.integers(30, 120, size=ni), rng.integers(10, 60, size=ni)
    )
    cn_valid = has_cn & (cn_day <= as_of_d)
    to_pay = np.round(iamount - cn_amount, 2)
    inst1 = np.round(to_pay * frac, 2)
    inst2 = np.round(to_pay - inst1, 2)
    pay2 = pay1 + rng.integers(20, 75, size=ni) + np.round(20 * iw).astype(np.int64)
    ok1 = (pay1 <= as_of_d) & (pay1 < default_day[ic])
    ok2 = partial & (pay2 <= as_of_d) & (pay2 < default_day[ic])
    paid = inst1 * ok1 + inst2 * ok2
    settled = paid + cn_amount * cn_valid
    istatus = np.where(
        settled >= iamount - 0.005,
        "paid",
        np.where((paid > 0) | cn_valid, "partially_paid", "open"),
    ).astype(object)
    iids = np.arange(1, ni + 1, dtype=np.int64) + off["invoices"]
    invoices_t = pa.table(
        {
            "id": pa.array(iids),
            "external_id": _code(f"{pfx}I", iids, 9),
            "customer_id": pa.array(ic + 1 + off_c),
            "order_id": pa.array(oids[inv_o]),
            "issue_date": _dates(issue),
            "due_date": _dates(due),
            "amount": pa.array(iamount),
            "currency": pa.array(currency[ic], type=pa.string()),
            "disputed": pa.array(disputed),
            "status": pa.array(istatus, type=pa.string()),
        }
    )

    # ------------------------------------------------------ payments and their allocations
    a_inv = np.concatenate([np.flatnonzero(ok1), np.flatnonzero(ok2)])
    a_day = np.concatenate([pay1[ok1], pay2[ok2]])
    a_amt = np.concatenate([inst1[ok1], inst2[ok2]])
    positive = a_amt > 0
    a_inv, a_day, a_amt = a_inv[positive], a_day[positive], a_amt[positive]
    a_cust = ic[a_inv]
    key = a_day * (n + 1) + a_cust  # same customer, same day -> one payment
    pkeys, a_pay = np.unique(key, return_inverse=True)
    npay = pkeys.size
    p_amount = np.round(np.bincount(a_pay, weights=a_amt, minlength=npay), 2)
    p_cust = pkeys % (n + 1)
    p_day = pkeys // (n + 1)
    pids = np.arange(1, npay + 1, dtype=np.int64) + off["payments"]
    cny = currency[p_cust] == "CNY"
    method = np.where(
        rng.random(npay) < np.where(cny, 0.2, 0.05),
        np.where(cny, 1, 2),
        0,
    )
    payments_t = pa.table(
        {
            "id": pa.array(pids),
            "external_id": _code(f"{pfx}P", pids, 9),
            "customer_id": pa.array(p_cust + 1 + off_c),
            "payment_date": _dates(p_day),
            "amount": pa.array(p_amount),
            "currency": pa.array(currency[p_cust], type=pa.string()),
            "method": _pick(_METHODS, method),
        }
    )
    a_order = np.argsort(a_pay, kind="stable")
    nal = a_order.size
    allocations_t = pa.table(
        {
            "id": pa.array(np.arange(1, nal + 1, dtype=np.int64) + off["payment_allocations"]),
            "payment_id": pa.array(pids[a_pay[a_order]]),
            "invoice_id": pa.array(iids[a_inv[a_order]]),
            "amount": pa.array(a_amt[a_order]),
        }
    )

    # ---------------------------------------------------------------------- credit notes
    cn_i = np.flatnonzero(cn_valid)
    cn_i = cn_i[np.argsort(cn_day[cn_i], kind="stable")]
    ncn = cn_i.size
    cnids = np.arange(1, ncn + 1, dtype=np.int64) + off["credit_notes"]
    credit_t = pa.table(
        {
            "id": pa.array(cnids),
            "external_id": _code(f"{pfx}N", cnids, 8),
            "customer_id": pa.array(ic[cn_i] + 1 + off_c),
            "invoice_id": pa.array(iids[cn_i]),
            "issue_date": _dates(cn_day[cn_i]),
            "amount": pa.array(cn_amount[cn_i]),
            "currency": pa.array(currency[ic[cn_i]], type=pa.string()),
            "reason": _pick(
                ("Price adjustment", "Returned goods", "Quality claim settled", "Dispute settled"),
                np.where(disputed[cn_i], 3, rng.integers(0, 3, size=ncn)),
            ),
        }
    )

    # ------------------------------------------------------------ contract breach (truth)
    month_of_order = _month_index(oday)
    live = ostatus != "cancelled"
    breach_count = np.zeros(n, dtype=np.int64)
    for pm in (3, 12):  # quarterly and yearly commitments
        per = (month_of_order // pm)[live]
        p0 = int(first_month // pm)
        n_per = int(_month_index(np.array([as_of_d]))[0] // pm) - p0 + 1
        vol = np.bincount(
            oc[live] * n_per + (per - p0), weights=oamount[live], minlength=n * n_per
        ).reshape(n, n_per)
        p_first = _month_start(np.arange(p0, p0 + n_per) * pm)
        p_last = _month_start(np.arange(p0 + 1, p0 + n_per + 1) * pm) - 1
        complete = (
            (p_first[None, :] >= onboard[:, None])
            & (p_first[None, :] >= hist_start)
            & (p_last[None, :] <= np.minimum(as_of_d, default_day - 1)[:, None])
        )
        short = complete & (vol < min_amount[:, None])
        sel = has_min & (period_months == pm)
        breach_count[sel] = short[sel].sum(axis=1)
    breaches = breach_count > 0

    # ------------------------------------------------------------------ external signals
    note("external signals")
    q_months = np.flatnonzero(moy[:n_h] % 3 == 0)
    q_end = m_start[q_months] + m_len[q_months] - 1
    qd = np.broadcast_to(q_end[None, :], (n, q_months.size))
    present = (qd >= onboard[:, None]) & (qd < default_day[:, None] + 90) & (qd <= as_of_d)
    sw = _warning(qd, warn_start[:, None], default_day[:, None])
    score = (
        72.0
        - 11.0 * z[:, None]
        + rng.normal(0, 4.0, size=qd.shape)
        - 35.0 * sw
        - 30.0 * stress[:, q_months]
        - 20.0 * (qd >= default_day[:, None])
    )
    score = np.round(np.clip(score, 1.0, 99.0), 1)
    sc, sq = np.nonzero(present)
    s_kind = [np.full(sc.size, 0)]
    s_cust = [sc]
    s_day = [q_end[sq]]
    s_val = [score[sc, sq]]
    s_desc = [np.full(sc.size, -1)]
    # legal events: about half the defaulters during their warning period, a few others
    legal_def = defaults & (rng.random(n) < 0.45)
    ld = warn_start + np.floor(rng.random(n) * np.maximum(default_day - warn_start, 1)).astype(
        np.int64
    )
    legal_other = ~defaults & (rng.random(n) < (0.005 + 0.03 * sz))
    lo = np.maximum(hist_start, onboard) + np.floor(
        rng.random(n) * np.maximum(as_of_d - np.maximum(hist_start, onboard), 1)
    ).astype(np.int64)
    l_day = np.where(legal_def, ld, lo)
    l_sel = (legal_def | legal_other) & (l_day <= as_of_d) & (l_day >= hist_start)
    s_kind.append(np.full(int(l_sel.sum()), 1))
    s_cust.append(np.flatnonzero(l_sel))
    s_day.append(l_day[l_sel])
    s_val.append(np.full(int(l_sel.sum()), np.nan))
    s_desc.append(rng.integers(0, len(_LEGAL), size=int(l_sel.sum())))
    # bankruptcy filings after some defaults
    b_day = default_day + rng.integers(0, 90, size=n)
    bankrupt = observed & (rng.random(n) < 0.35) & (b_day <= as_of_d)
    s_kind.append(np.full(int(bankrupt.sum()), 2))
    s_cust.append(np.flatnonzero(bankrupt))
    s_day.append(b_day[bankrupt])
    s_val.append(np.full(int(bankrupt.sum()), np.nan))
    s_desc.append(np.full(int(bankrupt.sum()), len(_LEGAL)))
    sk = np.concatenate(s_kind)
    scu = np.concatenate(s_cust)
    sd = np.concatenate(s_day)
    sv = np.concatenate(s_val)
    sdesc = np.concatenate(s_desc)
    so = np.lexsort((scu, sd))
    sk, scu, sd, sv, sdesc = sk[so], scu[so], sd[so], sv[so], sdesc[so]
    nsig = sk.size
    sids = np.arange(1, nsig + 1, dtype=np.int64) + off["external_signals"]
    signals_t = pa.table(
        {
            "id": pa.array(sids),
            "external_id": _code(f"{pfx}S", sids, 9),
            "customer_id": pa.array(scu + 1 + off_c),
            "kind": _pick(("bureau_score", "legal_event", "bankruptcy"), sk),
            "signal_date": _dates(sd),
            "value": pa.array(sv, mask=np.isnan(sv)),
            "source": _pick(("credit_bureau", "court_records", "court_records"), sk),
            "description": pa.array(
                np.array([*_LEGAL, "Insolvency proceedings opened", None], dtype=object)[sdesc],
                type=pa.string(),
            ),
        }
    )

    # ------------------------------------------------------------------------ ground truth
    note("ground truth")
    downturn_set = set(int(j) for j in downturn)
    in_downturn = np.isin(ind, list(downturn_set))
    extras = _truth_extra(
        z, lead_months, warn_start, defaults, observed, bankrupt, in_downturn, breach_count, has_min
    )
    truth_t = pa.table(
        {
            "customer_id": pa.array(ids),
            "latent_risk": pa.array(np.round(annual_pd, 6)),
            "default_date": _dates(default_day, defaults),
            "breaches_contract": pa.array(breaches),
            "extra": pa.array(extras, type=pa.string()),
        }
    )

    tables = {
        "customers": customers_t,
        "contracts": contracts_t,
        "orders": orders_t,
        "invoices": invoices_t,
        "payments": payments_t,
        "payment_allocations": allocations_t,
        "credit_notes": credit_t,
        "external_signals": signals_t,
        "demo_truth": truth_t,
    }
    alive_years = np.clip(
        (np.minimum(default_day, as_of_d + 1) - np.maximum(onboard, hist_start)) / 365.25, 0, None
    ).sum()
    stats = {
        "customers": n,
        "groups": n_grp,
        "defaults": int(observed.sum()),
        "future_defaults": int((defaults & ~observed).sum()),
        "defaults_in_history": int(((default_day >= hist_start) & observed).sum()),
        "alive_years": float(alive_years),
        "contract_breaches": int(breaches.sum()),
    }
    return tables, stats


def _truth_extra(
    z: np.ndarray,
    lead: np.ndarray,
    warn_start: np.ndarray,
    defaults: np.ndarray,
    observed: np.ndarray,
    bankrupt: np.ndarray,
    in_downturn: np.ndarray,
    breach_count: np.ndarray,
    has_min: np.ndarray,
) -> list[str]:
    """The JSON ``extra`` column of ``demo_truth`` (one short object per customer)."""
    ws = np.where(defaults, warn_start, 0).astype("datetime64[D]").astype(str)
    out: list[str] = []
    zl, dl, ol, bl, il, cl, hl, ll = (
        np.round(z, 4).tolist(),
        defaults.tolist(),
        observed.tolist(),
        bankrupt.tolist(),
        in_downturn.tolist(),
        breach_count.tolist(),
        has_min.tolist(),
        lead.tolist(),
    )
    wl = ws.tolist()
    for i in range(z.size):
        d: dict[str, Any] = {
            "z": zl[i],
            "observed_default": ol[i],
            "downturn_industry": il[i],
            "min_volume": hl[i],
            "breached_periods": cl[i],
        }
        if dl[i]:
            d["warning_start"] = wl[i]
            d["lead_months"] = ll[i]
            d["bankruptcy"] = bl[i]
        out.append(json.dumps(d))
    return out
