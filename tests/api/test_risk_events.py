"""/api/v1/risk-events and /api/v1/risk-sources on the seeded portfolio (both databases)."""

from __future__ import annotations

from sqlalchemy import select

from riskdesk.analytics.steps.identify import run_identification
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import AuditEntry


def _identify(portfolio, as_of) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(portfolio.url)
    run_identification(eng, as_of)
    eng.dispose()


def test_customer_risk_events_point_at_the_overdue_invoices(
    client, portfolio, as_user, as_of
) -> None:  # type: ignore[no-untyped-def]
    _identify(portfolio, as_of)
    cid = portfolio.ids["C001"]
    r = client.get(f"/api/v1/customers/{cid}/risk-events", headers=as_user("rita"))
    assert r.status_code == 200
    items = r.json()["items"]
    kinds = {e["manifestation"] for e in items}
    # I2 20 days late (300 left), I3 90 days (700 after a credit note), I4 149 days (400)
    assert {"credit.overdue_1_30", "credit.overdue_61_90", "credit.overdue_90_plus"} <= kinds
    i3 = next(e for e in items if e["manifestation"] == "credit.overdue_61_90")
    assert i3["evidence"]["invoice"] == "I3" and i3["evidence"]["balance"] == 700.0
    assert all(e["open"] for e in items)
    detail = client.get(f"/api/v1/risk-events/{i3['id']}", headers=as_user("rita")).json()
    assert detail["history"][0]["change"] == "opened"


def test_risk_event_list_filters_paginates_and_hides_other_owners(
    client, portfolio, as_user, as_of
) -> None:  # type: ignore[no-untyped-def]
    _identify(portfolio, as_of)
    everything = client.get("/api/v1/risk-events", headers=as_user("rita")).json()
    assert everything["total"] >= 4
    page = client.get("/api/v1/risk-events?limit=2&offset=0", headers=as_user("rita")).json()
    assert len(page["items"]) == 2 and page["total"] == everything["total"]
    high = client.get(
        "/api/v1/risk-events?min_severity=high&status=open", headers=as_user("rita")
    ).json()
    assert high["items"] and all(e["severity"] in ("high", "critical") for e in high["items"])
    credit = client.get("/api/v1/risk-events?source=market", headers=as_user("rita")).json()
    assert credit["total"] == 0
    # bob (sales) sees only his own customers' events; alice's customer is a 404 for him
    bob = client.get("/api/v1/risk-events", headers=as_user("bob")).json()
    mine = {portfolio.ids["C002"], portfolio.ids["C004"]}
    assert all(e["customer_id"] in mine for e in bob["items"])
    assert bob["total"] < everything["total"]
    r = client.get(f"/api/v1/customers/{portfolio.ids['C001']}/risk-events", headers=as_user("bob"))
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    bad = client.get("/api/v1/risk-events?severity=dreadful", headers=as_user("rita"))
    assert bad.status_code == 422


def test_risk_sources_are_listed_and_added_by_risk_managers_only(
    client, portfolio, as_user
) -> None:  # type: ignore[no-untyped-def]
    listed = client.get("/api/v1/risk-sources", headers=as_user("alice")).json()["items"]
    assert {"market", "credit", "contract", "demand"} <= {s["code"] for s in listed}
    body = {
        "code": "supply",
        "name_en": "Supply chain",
        "name_zh": "供应链",
        "manifestations": [{"code": "supply.late", "name_en": "Late", "name_zh": "迟到"}],
    }
    r = client.post("/api/v1/risk-sources", json=body, headers=as_user("alice"))
    assert r.status_code == 403
    r = client.post("/api/v1/risk-sources", json=body, headers=as_user("rita"))
    assert r.status_code == 201 and r.json()["created"] == 1
    codes = {
        s["code"]
        for s in client.get("/api/v1/risk-sources", headers=as_user("rita")).json()["items"]
    }
    assert "supply" in codes
    bad = client.post(
        "/api/v1/risk-sources", json={**body, "code": "credit"}, headers=as_user("rita")
    )
    assert bad.status_code == 422 and "built-in" in bad.json()["detail"]
    eng = make_engine(portfolio.url)
    with session_scope(eng) as s:
        actions = s.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "risk_source.upsert")
        ).all()
    eng.dispose()
    assert actions == ["rita"]


def test_huge_offset_is_a_422_not_a_500(sqlite_url: str) -> None:
    from fastapi.testclient import TestClient

    from riskdesk.api.app import create_app
    from riskdesk.store.db import make_engine
    from riskdesk.store.users import add_user, create_token

    eng = make_engine(sqlite_url)
    with session_scope(eng) as s:
        add_user(s, "ana", "analyst", "secret-pass-1")
        token = create_token(s, "ana").token
    client = TestClient(create_app(sqlite_url))
    res = client.get(
        "/api/v1/risk-events",
        params={"offset": 2**63},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert res.status_code == 422
    assert res.headers["content-type"].startswith("application/problem+json")
