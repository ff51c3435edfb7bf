"""The two demo cases: a manufacturer's customer book and a retail supplier's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Industry:
    code: str
    label: str
    word: str  # used in generated company names
    weight: float


@dataclass(frozen=True)
class Region:
    name: str
    code: str
    countries: tuple[str, ...]
    country_weights: tuple[float, ...]
    currency: str
    weight: float
    owners: tuple[str, ...]
    style: str  # cn | eu | na: how company names look


@dataclass(frozen=True)
class Case:
    """Parameters of one synthetic portfolio."""

    name: str
    prefix: str
    default_customers: int
    industries: tuple[Industry, ...]
    regions: tuple[Region, ...]
    orders_per_month: float  # mean orders per customer and month
    order_eur: float  # mean order size in EUR
    terms: tuple[int, ...]  # payment terms (days) in contracts
    terms_weights: tuple[float, ...]
    min_volume_share: float  # share of contracts with a minimum volume commitment
    group_share: float  # share of customers heading a group (parent companies, chains)
    members_per_group: float  # mean number of other members per group
    base_logit: float  # logit of the annual default probability of an average customer
    risk_slope: float  # how strongly the latent factor moves that logit
    seasonality: float  # amplitude of the yearly order cycle (peak in December)
    store_words: tuple[str, ...]  # name suffixes


_CN_OWNERS = ("sales_li", "sales_wang", "sales_zhang", "sales_chen")

MANUFACTURER = Case(
    name="manufacturer",
    prefix="M",
    default_customers=2000,
    industries=(
        Industry("automotive_parts", "Automotive parts", "Auto Parts", 0.22),
        Industry("construction", "Construction", "Construction", 0.18),
        Industry("machinery", "Machinery", "Machinery", 0.20),
        Industry("electronics", "Electronics", "Electronics", 0.18),
        Industry("food_processing", "Food processing", "Food", 0.12),
        Industry("textiles", "Textiles", "Textiles", 0.10),
    ),
    regions=(
        Region("East China", "EAST_CHINA", ("CN",), (1.0,), "CNY", 0.30, _CN_OWNERS[:2], "cn"),
        Region("South China", "SOUTH_CHINA", ("CN",), (1.0,), "CNY", 0.20, _CN_OWNERS[2:], "cn"),
        Region("North China", "NORTH_CHINA", ("CN",), (1.0,), "CNY", 0.12, ("sales_liu",), "cn"),
        Region(
            "Europe",
            "EUROPE",
            ("DE", "FR", "IT", "NL", "PL"),
            (0.35, 0.2, 0.2, 0.1, 0.15),
            "EUR",
            0.24,
            ("sales_mueller", "sales_schmidt"),
            "eu",
        ),
        Region(
            "North America",
            "NORTH_AMERICA",
            ("US", "CA", "MX"),
            (0.75, 0.15, 0.10),
            "USD",
            0.14,
            ("sales_smith",),
            "na",
        ),
    ),
    orders_per_month=1.1,
    order_eur=42_000.0,
    terms=(30, 45, 60, 90),
    terms_weights=(0.30, 0.25, 0.30, 0.15),
    min_volume_share=0.45,
    group_share=0.03,
    members_per_group=2.5,
    base_logit=-3.9,
    risk_slope=1.0,
    seasonality=0.08,
    store_words=("Co., Ltd.", "Group", "Industries"),
)

RETAILER = Case(
    name="retailer",
    prefix="R",
    default_customers=8000,
    industries=(
        Industry("grocery", "Grocery", "Fresh Mart", 0.30),
        Industry("convenience", "Convenience stores", "Convenience", 0.22),
        Industry("pharmacy", "Pharmacy", "Pharmacy", 0.12),
        Industry("consumer_electronics", "Consumer electronics retail", "Digital", 0.12),
        Industry("apparel", "Apparel retail", "Fashion", 0.14),
        Industry("home_diy", "Home and DIY", "Home", 0.10),
    ),
    regions=(
        Region(
            "East China",
            "EAST_CHINA",
            ("CN",),
            (1.0,),
            "CNY",
            0.32,
            ("sales_li", "sales_zhou"),
            "cn",
        ),
        Region(
            "South China",
            "SOUTH_CHINA",
            ("CN",),
            (1.0,),
            "CNY",
            0.24,
            ("sales_wang", "sales_wu"),
            "cn",
        ),
        Region("North China", "NORTH_CHINA", ("CN",), (1.0,), "CNY", 0.18, ("sales_zhao",), "cn"),
        Region(
            "Europe",
            "EUROPE",
            ("DE", "AT", "NL", "FR"),
            (0.5, 0.15, 0.15, 0.2),
            "EUR",
            0.18,
            ("sales_mueller",),
            "eu",
        ),
        Region(
            "North America",
            "NORTH_AMERICA",
            ("US", "CA"),
            (0.85, 0.15),
            "USD",
            0.08,
            ("sales_brown",),
            "na",
        ),
    ),
    orders_per_month=2.6,
    order_eur=2_400.0,
    terms=(15, 30, 45),
    terms_weights=(0.35, 0.45, 0.20),
    min_volume_share=0.20,
    group_share=0.02,
    members_per_group=6.0,
    base_logit=-3.55,
    risk_slope=0.95,
    seasonality=0.15,
    store_words=("Store", "Shop", "Retail Co."),
)

CASES: dict[str, Case] = {c.name: c for c in (MANUFACTURER, RETAILER)}
