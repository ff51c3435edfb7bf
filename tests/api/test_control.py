"""Control API: order check, limits with maker-checker, holds, tasks (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

API = "/api/v1"


def _check(client: TestClient, who: dict[str, str], cid: int, amount: str, **kw: str):  # type: ignore[no-untyped-def]
    body = {"customer_id": cid, "amount": amount, "currency": "EUR", **kw}
    return client.post(f"{API}/orders/check", json=body, headers=who)


def test_order_check_over_http_reports_every_reason(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],
    as_of,  # type: ignore[no-untyped-def]
) -> None:
    cid = portfolio.ids["C001"]
    r = _check(client, as_user("alice"), cid, "100.00", as_of=as_of.isoformat())
    assert r.status_code == 200, r.text
    out = r.json()
    codes = {x["code"] for x in out["reasons"]}
    assert {"no_limit", "unrated", "overdue_days_stop"} <= codes
    assert out["decision"] == "stop"
    assert out["amount"] == "100.00"  # money stays an exact decimal string
    assert all(set(x["message"]) == {"en", "zh"} for x in out["reasons"])
    # someone else's customer is invisible to a sales user; auditors cannot check
    assert _check(client, as_user("bob"), cid, "1").status_code == 404
    assert _check(client, as_user("audrey"), cid, "1").status_code == 403
    bad = _check(client, as_user("alice"), cid, "12,5x")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(
        "application/problem+json"
    )


def test_limit_hold_release_and_seller_notification(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],  # type: ignore[no-untyped-def]
    as_of,  # type: ignore[no-untyped-def]
) -> None:
    cid = portfolio.ids["C002"]  # bob's customer: 300 due one day before as_of
    rita, bob = as_user("rita"), as_user("bob")
    r = client.put(
        f"{API}/customers/{cid}/limit",
        json={"amount": "1000", "currency": "EUR", "reason": "initial"},
        headers=rita,
    )
    assert r.status_code == 200, r.text
    assert (
        client.put(
            f"{API}/customers/{cid}/limit",
            json={"amount": "9", "currency": "EUR", "reason": "x"},
            headers=bob,
        ).status_code
        == 403
    )
    exp = client.get(f"{API}/customers/{cid}/exposure", headers=bob).json()
    assert exp["limit"]["amount"] == "1000.00"
    day = as_of.isoformat()
    stop = _check(client, bob, cid, "5000", order_ref="SO-8", as_of=day).json()
    assert stop["decision"] == "stop"
    assert "far_over_limit" in {x["code"] for x in stop["reasons"]}
    held = _check(client, bob, cid, "1200", order_ref="SO-9", as_of=day).json()
    assert held["decision"] == "hold", held
    assert {"over_limit", "unrated", "overdue_amount"} <= {x["code"] for x in held["reasons"]}
    queue = client.get(f"{API}/holds", headers=rita).json()["holds"]
    assert [h["id"] for h in queue] == [held["check_id"]]
    no_reason = client.post(
        f"{API}/holds/{held['check_id']}/release", json={"reason": ""}, headers=rita
    )
    assert no_reason.status_code == 422
    assert (
        client.post(
            f"{API}/holds/{held['check_id']}/release", json={"reason": "ok"}, headers=bob
        ).status_code
        == 403
    )
    ok = client.post(
        f"{API}/holds/{held['check_id']}/release", json={"reason": "prepaid 50 %"}, headers=rita
    )
    assert ok.status_code == 200 and ok.json()["status"] == "released"
    tasks = client.get(f"{API}/tasks", headers=bob).json()["tasks"]
    assert any(t["kind"] == "notify" and "SO-9" in t["title"] for t in tasks)


def test_limit_request_maker_checker_over_http(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],  # type: ignore[no-untyped-def]
) -> None:
    cid = portfolio.ids["C002"]
    rita, root = as_user("rita"), as_user("root")
    r = client.post(
        f"{API}/limit-requests",
        headers=rita,
        json={"customer_id": cid, "amount": "50000", "currency": "EUR", "reason": "new contract"},
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    own = client.post(f"{API}/limit-requests/{rid}/approve", json={"reason": "me"}, headers=rita)
    assert own.status_code == 403 and "own request" in own.json()["detail"]
    ok = client.post(f"{API}/limit-requests/{rid}/approve", json={"reason": "fine"}, headers=root)
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    lim = client.get(f"{API}/customers/{cid}/limits", headers=rita).json()
    assert lim["current"]["amount"] == "50000.00" and lim["current"]["source"] == "request"


def test_control_pages_render_in_both_languages(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],  # type: ignore[no-untyped-def]
    as_of,  # type: ignore[no-untyped-def]
) -> None:
    cid = portfolio.ids["C002"]
    rita = as_user("rita")
    client.put(
        f"{API}/customers/{cid}/limit",
        headers=rita,
        json={"amount": "1000", "currency": "EUR", "reason": "initial"},
    )
    held = _check(
        client, as_user("bob"), cid, "1200", order_ref="SO-77", as_of=as_of.isoformat()
    ).json()
    assert held["decision"] == "hold"
    for lang, word in (("en", "Approval queue"), ("zh", "审批队列")):
        page = client.get(f"/control/holds?lang={lang}", headers=rita)
        assert page.status_code == 200, page.text
        assert word in page.text and "SO-77" in page.text
    for path in (
        "/control/limits",
        "/control/concentration",
        "/control/insurance",
        "/control/tasks",
        f"/control/customers/{cid}",
    ):
        r = client.get(f"{path}?lang=zh", headers=rita)
        assert r.status_code == 200, (path, r.text[:500])
    cust = client.get(f"/control/customers/{cid}?lang=zh", headers=rita).text
    assert "剩余额度" in cust and "SO-77" in cust
    # a sales user cannot open another seller's customer nor the limits page
    assert client.get(f"/control/customers/{cid}", headers=as_user("alice")).status_code == 404
    assert client.get("/control/limits", headers=as_user("alice")).status_code == 403
    # panels on the customer page and the dashboard
    assert "敞口与信用额度" in client.get(f"/customers/{cid}?lang=zh", headers=rita).text
    assert "Approval queue and tasks" in client.get("/?lang=en", headers=rita).text


def test_hostile_input_is_refused_not_crashed(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],  # type: ignore[no-untyped-def]
) -> None:
    rita, cid = as_user("rita"), portfolio.ids["C002"]
    for amount in ("1e400", "NaN", "Infinity", "99999999999999999999", "-0", "0.001"):
        assert _check(client, rita, cid, amount).status_code == 422, amount
    assert _check(client, rita, 2**64, "1").status_code == 422
    huge = 2**31
    for path in (f"/customers/{huge}/exposure", f"/customers/{huge}/limits"):
        assert client.get(API + path, headers=rita).status_code == 422
    assert (
        client.post(f"{API}/holds/{huge}/release", json={"reason": "x"}, headers=rita).status_code
        == 422
    )
    r = client.put(
        f"{API}/customers/{cid}/limit",
        headers=rita,
        json={"amount": "1e400", "currency": "EUR", "reason": "x"},
    )
    assert r.status_code == 422


def _token_row(portfolio, user: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from riskdesk.store.db import make_engine
    from riskdesk.store.models import ApiToken
    from riskdesk.store.users import _token_hash

    eng = make_engine(portfolio.url)
    table = ApiToken.__table__
    return (
        eng,
        table,
        select(table).where(table.c.token_hash == _token_hash(portfolio.tokens[user])),
    )


def test_order_check_auth_cache_expires_and_forgets_on_change(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],
    as_of,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    """The token cache: a hit needs no database read (a revocation behind the application's
    back shows after the TTL), a change through the application applies at once."""
    from sqlalchemy import update

    from riskdesk.store import users

    users.forget_cached_tokens()
    cid = portfolio.ids["C001"]
    day = as_of.isoformat()
    assert _check(client, as_user("alice"), cid, "1", as_of=day).status_code == 200  # cached now
    eng, table, q = _token_row(portfolio, "alice")
    with eng.begin() as c:  # as another process would: raw SQL, this process is not told
        c.execute(update(table).where(q.whereclause).values(revoked=True))
    assert _check(client, as_user("alice"), cid, "1", as_of=day).status_code == 200
    later = users.time.monotonic() + users.AUTH_CACHE_SECONDS + 1
    monkeypatch.setattr(users.time, "monotonic", lambda: later)
    assert _check(client, as_user("alice"), cid, "1", as_of=day).status_code == 401
    monkeypatch.undo()
    with eng.begin() as c:
        c.execute(update(table).where(q.whereclause).values(revoked=False))
    eng.dispose()
    users.forget_cached_tokens()
    # deactivated through the API: refused at once, although the token was cached
    rita = as_user("rita")
    assert _check(client, rita, cid, "1", as_of=day).status_code == 200
    users_ = client.get(f"{API}/users", headers=as_user("root")).json()
    rita_id = next(u["id"] for u in users_ if u["username"] == "rita")
    r = client.post(f"{API}/users/{rita_id}/deactivate", headers=as_user("root"))
    assert r.status_code == 200, r.text
    assert _check(client, rita, cid, "1", as_of=day).status_code == 401


def test_cached_token_still_records_its_use(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],
    as_of,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    """A cache entry ends when the token's last use is due to be recorded again."""
    from sqlalchemy import update

    from riskdesk.store import users

    users.forget_cached_tokens()
    eng, table, q = _token_row(portfolio, "alice")
    almost = users.utcnow() - users.TOKEN_TOUCH_INTERVAL + timedelta(seconds=1)
    with eng.begin() as c:
        c.execute(update(table).where(q.whereclause).values(last_used_at=almost))
    cid, day = portfolio.ids["C001"], as_of.isoformat()
    assert _check(client, as_user("alice"), cid, "1", as_of=day).status_code == 200
    with eng.connect() as c:
        assert c.execute(q).one().last_used_at == almost  # used within the interval: not touched
    later = users.time.monotonic() + 2  # past the touch time, well within the cache TTL
    monkeypatch.setattr(users.time, "monotonic", lambda: later)
    monkeypatch.setattr(
        users, "utcnow", lambda: almost + users.TOKEN_TOUCH_INTERVAL + timedelta(seconds=1)
    )
    assert _check(client, as_user("alice"), cid, "1", as_of=day).status_code == 200
    with eng.connect() as c:
        assert c.execute(q).one().last_used_at > almost
    eng.dispose()


def test_token_revoked_through_the_orm_stops_order_checks_at_once(
    client: TestClient,
    portfolio,
    as_user: Callable[[str], dict[str, str]],
    as_of,  # type: ignore[no-untyped-def]
) -> None:
    """What the admin page does (``tok.revoked = True``) empties this process's token cache."""
    from sqlalchemy import select

    from riskdesk.store.db import session_scope
    from riskdesk.store.models import ApiToken
    from riskdesk.store.users import _token_hash

    cid, day = portfolio.ids["C001"], as_of.isoformat()
    alice = as_user("alice")
    assert _check(client, alice, cid, "1", as_of=day).status_code == 200
    assert _check(client, alice, cid, "1", as_of=day).status_code == 200  # served from the cache
    eng, _table, _q = _token_row(portfolio, "alice")
    with session_scope(eng) as s:
        tok = s.scalars(
            select(ApiToken).where(ApiToken.token_hash == _token_hash(portfolio.tokens["alice"]))
        ).one()
        tok.revoked = True
    eng.dispose()
    assert _check(client, alice, cid, "1", as_of=day).status_code == 401
