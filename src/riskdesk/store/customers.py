"""Customer look-ups shared by the CLI, the API and the stage repositories."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from riskdesk.store.models import Customer
from riskdesk.store.types import MAX_ID


def customer_dict(c: Customer) -> dict[str, Any]:
    """A customer's master data as a plain dict (Decimals and dates left as they are)."""
    return {
        "id": c.id,
        "external_id": c.external_id,
        "name": c.name,
        "legal_id": c.legal_id,
        "group_code": c.group_code,
        "parent_id": c.parent_id,
        "industry": c.industry,
        "region": c.region,
        "country": c.country,
        "currency": c.currency,
        "revenue": c.revenue,
        "employees": c.employees,
        "founded_on": c.founded_on,
        "market_share": c.market_share,
        "owner": c.owner,
        "status": c.status,
        "crm_id": c.crm_id,
        "erp_id": c.erp_id,
    }


def find_customer(session: Session, key: str | int) -> Customer | None:
    """A customer by internal id (an ``int``), or by external code, falling back to the
    internal id when a string ``key`` is all digits and no code matches."""
    if isinstance(key, int):
        return session.get(Customer, key) if 0 < key <= MAX_ID else None
    c = session.scalar(select(Customer).where(Customer.external_id == key))
    if c is None and key.isdigit() and 0 < int(key) <= MAX_ID:
        c = session.get(Customer, int(key))
    return c
