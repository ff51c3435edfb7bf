"""Customer list and detail: visibility by role, filters, sorting, pagination, exposure."""

from __future__ import annotations

from decimal import Decimal

from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import Rating


def test_sales_user_sees_only_own_customers_in_list(client, as_user):
    r = client.get("/api/v1/customers", headers=as_user("alice"))
    assert r.status_code == 200
    body = r.json()
    assert {c["external_id"] for c in body["items"]} == {"C001", "C003"}
    assert body["total"] == 2
    assert all(c["owner"] == "alice" for c in body["items"])


def test_sales_user_gets_404_for_someone_elses_customer(client, as_user, portfolio):
    other = portfolio.ids["C002"]
    r = client.get(f"/api/v1/customers/{other}", headers=as_user("alice"))
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    missing = client.get("/api/v1/customers/999999", headers=as_user("alice"))
    # indistinguishable from a customer that does not exist
    assert missing.status_code == 404
    assert r.json()["title"] == missing.json()["title"]
    own = client.get(f"/api/v1/customers/{portfolio.ids['C001']}", headers=as_user("alice"))
    assert own.status_code == 200


def test_sales_user_cannot_widen_the_list_with_an_owner_filter(client, as_user):
    r = client.get("/api/v1/customers", params={"owner": "bob"}, headers=as_user("alice"))
    assert r.status_code == 200
    assert r.json()["items"] == []


def test_risk_manager_sees_all_customers(client, as_user):
    r = client.get("/api/v1/customers", headers=as_user("rita"))
    assert r.json()["total"] == 4


def test_filters_search_sorting_and_pagination(client, as_user):
    h = as_user("rita")
    r = client.get("/api/v1/customers", params={"industry": "machinery"}, headers=h).json()
    assert {c["external_id"] for c in r["items"]} == {"C001", "C003"}
    r = client.get("/api/v1/customers", params={"region": "North", "status": "blocked"}, headers=h)
    assert [c["external_id"] for c in r.json()["items"]] == ["C004"]
    r = client.get("/api/v1/customers", params={"q": "acme"}, headers=h).json()
    assert [c["external_id"] for c in r["items"]] == ["C001"]
    r = client.get("/api/v1/customers", params={"q": "c00"}, headers=h).json()
    assert r["total"] == 4  # external id matches too
    r = client.get("/api/v1/customers", params={"q": "100%"}, headers=h).json()
    assert r["total"] == 0  # % is a literal, not a wildcard
    names = [
        c["name"]
        for c in client.get("/api/v1/customers", params={"sort": "-name"}, headers=h).json()[
            "items"
        ]
    ]
    assert names == sorted(names, reverse=True)
    page1 = client.get("/api/v1/customers", params={"sort": "id", "limit": 3}, headers=h).json()
    page2 = client.get(
        "/api/v1/customers", params={"sort": "id", "limit": 3, "offset": 3}, headers=h
    ).json()
    assert page1["total"] == page2["total"] == 4
    ids = [c["id"] for c in page1["items"] + page2["items"]]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_rating_filter_applies_when_ratings_exist(client, as_user, portfolio, as_of):
    h = as_user("rita")
    eng = make_engine(portfolio.url)
    with session_scope(eng) as s:
        s.add(
            Rating(
                customer_id=portfolio.ids["C003"],
                status="approved",
                base_source="manual",
                base_grade=4,
                final_grade=4,
                final_pd=0.01,
                valid_until=as_of,
                proposed_by="rita",
            )
        )
    eng.dispose()
    r = client.get("/api/v1/customers", params={"rating": "4"}, headers=h).json()
    assert [c["external_id"] for c in r["items"]] == ["C003"]
    assert r["items"][0]["rating"] == 4
    assert client.get("/api/v1/customers", params={"rating": "7"}, headers=h).json()["total"] == 0


def test_customer_detail_exposure_and_ageing(client, as_user, portfolio, as_of):
    cid = portfolio.ids["C001"]
    r = client.get(
        f"/api/v1/customers/{cid}", params={"as_of": as_of.isoformat()}, headers=as_user("alice")
    )
    assert r.status_code == 200
    d = r.json()
    assert d["external_id"] == "C001"
    assert [k["external_id"] for k in d["contracts"]] == ["K001"]
    balances = {i["external_id"]: Decimal(i["balance"]) for i in d["open_invoices"]}
    # paid invoice I5 is gone; I2 net of its allocation, I3 net of its credit note
    assert balances == {
        "I1": Decimal("1000.00"),
        "I2": Decimal("300.00"),
        "I3": Decimal("700.00"),
        "I4": Decimal("400.00"),
    }
    e = d["exposure"]
    assert e["currency"] == "EUR"
    assert Decimal(e["open_invoices"]) == sum(balances.values())
    assert Decimal(e["open_orders"]) == Decimal("600.00")  # the invoiced order is not counted twice
    assert e["total"] == "3000.00"  # money is an exact decimal string, never a float
    ageing = {k: Decimal(v) for k, v in e["ageing"].items()}
    assert ageing == {
        "current": Decimal("1000.00"),
        "1-30": Decimal("300.00"),
        "31-60": Decimal("0.00"),
        "61-90": Decimal("700.00"),
        "90+": Decimal("400.00"),
    }
    assert Decimal(e["overdue"]) == Decimal("1400.00")
    assert {i["bucket"] for i in d["open_invoices"] if i["external_id"] == "I3"} == {"61-90"}
    assert [p["external_id"] for p in d["history"]["payments"]] == ["P1"]


def test_foreign_currency_exposure_is_converted_with_dated_fx(client, as_user, portfolio, as_of):
    # C003 keeps its books in CNY: the 10,000 CNY invoice stays in CNY (its own currency)
    cid = portfolio.ids["C003"]
    d = client.get(
        f"/api/v1/customers/{cid}", params={"as_of": as_of.isoformat()}, headers=as_user("rita")
    ).json()
    assert d["exposure"]["currency"] == "CNY"
    assert Decimal(d["exposure"]["ageing"]["31-60"]) == Decimal("10000.00")
