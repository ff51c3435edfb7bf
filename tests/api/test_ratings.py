"""REST API: expert assessments, ratings (propose / approve), AHP."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import User
from riskdesk.store.users import create_token

API = "/api/v1"


def _analyst(url: str) -> dict[str, str]:
    eng = make_engine(url)
    with session_scope(eng) as s:
        s.add(User(username="anna", role="analyst"))  # token only: no password hash needed
        s.flush()
        token = create_token(s, "anna").token
    eng.dispose()
    return {"Authorization": f"Bearer {token}"}


def test_assessments_rating_and_approval_flow(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],  # type: ignore[no-untyped-def]
) -> None:
    anna = _analyst(portfolio.url)
    cid = portfolio.ids["C001"]
    for who, body in (
        (anna, {"source": "credit", "likelihood": 4, "impact": 3}),
        (
            as_user("rita"),
            {
                "source": "credit",
                "likelihood": 4,
                "impact": 4,
                "comment": "90+ days overdue",
                "evidence": ["inv/4"],
            },
        ),
    ):
        r = client.post(f"{API}/customers/{cid}/assessments", json=body, headers=who)
        assert r.status_code == 201, r.text
    m = client.get(f"{API}/customers/{cid}/assessments", headers=as_user("alice")).json()
    assert m["consensus"][0]["likelihood"] == 4 and m["consensus"][0]["impact"] == 3.5
    assert m["notches"] == 1
    # sales may read but not assess
    r = client.post(
        f"{API}/customers/{cid}/assessments",
        headers=as_user("alice"),
        json={"source": "credit", "likelihood": 1, "impact": 1},
    )
    assert r.status_code == 403

    r = client.post(
        f"{API}/customers/{cid}/ratings", headers=anna, json={"grade": 4, "as_of": "2026-06-30"}
    )
    assert r.status_code == 201, r.text
    prop = r.json()
    assert (prop["base_grade"], prop["qualitative_notches"], prop["final_grade"]) == (4, 1, 5)
    # an analyst cannot approve; a risk manager can
    assert client.post(f"{API}/ratings/{prop['id']}/approve", headers=anna).status_code == 403
    r = client.post(
        f"{API}/ratings/{prop['id']}/approve",
        headers=as_user("rita"),
        json={"reason": "agreed with the notch"},
    )
    assert r.status_code == 200, r.text
    hist = client.get(f"{API}/customers/{cid}/ratings", headers=as_user("rita")).json()
    assert hist["current"]["grade"] == 5
    assert [i["status"] for i in hist["items"]] == ["approved"]
    # the customer list shows the approved grade
    listed = client.get(f"{API}/customers?q=C001", headers=as_user("rita")).json()
    assert listed["items"][0]["rating"] == 5


def test_proposer_cannot_approve_and_override_needs_a_reason(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],  # type: ignore[no-untyped-def]
) -> None:
    rita = as_user("rita")
    cid = portfolio.ids["C002"]
    r = client.post(
        f"{API}/customers/{cid}/ratings",
        headers=rita,
        json={"grade": 3, "override_notches": 1, "override_expires": "2030-01-01"},
    )
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")
    r = client.post(f"{API}/customers/{cid}/ratings", headers=rita, json={"grade": 3})
    rid = r.json()["id"]
    r = client.post(f"{API}/ratings/{rid}/approve", headers=rita)
    assert r.status_code == 409 and "proposer" in r.json()["detail"]
    assert client.post(f"{API}/ratings/{rid}/approve", headers=as_user("root")).status_code == 200


def test_sales_cannot_see_another_owners_customer(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],  # type: ignore[no-untyped-def]
) -> None:
    cid = portfolio.ids["C002"]  # owned by bob
    assert client.get(f"{API}/customers/{cid}/ratings", headers=as_user("alice")).status_code == 404
    assert (
        client.get(f"{API}/customers/{cid}/assessments", headers=as_user("alice")).status_code
        == 404
    )


def test_ahp_endpoint_returns_weights_or_refuses_with_the_conflicts(
    client: TestClient, as_user: Callable[[str], dict[str, str]]
) -> None:
    ok = client.post(
        f"{API}/ahp",
        headers=as_user("rita"),
        json={"criteria": ["pay", "size"], "matrix": [[1, 3], ["1/3", 1]]},
    )
    assert ok.status_code == 200
    assert ok.json()["weights"] == {"pay": 0.75, "size": 0.25}
    bad = client.post(
        f"{API}/ahp",
        headers=as_user("rita"),
        json={"criteria": ["a", "b", "c"], "matrix": [[1, 9, "1/9"], ["1/9", 1, 9], [9, "1/9", 1]]},
    )
    assert bad.status_code == 422
    assert "a vs b" in bad.json()["detail"] or "b vs c" in bad.json()["detail"]
    mal = client.post(f"{API}/ahp", headers=as_user("rita"), json={"matrix": [[1, 3], [3, 1]]})
    assert mal.status_code == 422 and "reciprocal" in mal.json()["detail"]
