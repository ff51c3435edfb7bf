"""Monitor API: event batches, alerts and cases with visibility by owner, rule versions."""

from __future__ import annotations

from typing import Any

from tests.seed import api_event

_ev = api_event


BREACH_C2 = _ev("a1", "contract.breached", "C002", clause="minimum_volume")
ORDER_C1 = _ev(
    "a2",
    "order.placed",
    "C001",
    order_id="AO1",
    order_date="2026-06-01",
    amount="100.00",
    currency="EUR",
)
BAD = _ev(
    "a3",
    "order.placed",
    "C001",
    order_id="AO2",
    order_date="2026-06-01",
    amount="-5",
    currency="EUR",
)


def test_event_batch_counts_accepted_duplicates_and_rejected(client, as_user) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/events", json=[BREACH_C2, ORDER_C1, BAD], headers=as_user("rita"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 1)
    assert body["rejections"][0]["event_id"] == "a3"
    assert "negative" in body["rejections"][0]["reason"]
    again = client.post(
        "/api/v1/events", json=[BREACH_C2, ORDER_C1], headers=as_user("rita")
    ).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    state = client.get(
        f"/api/v1/customers/{_id(client, as_user, 'C001')}/monitor", headers=as_user("rita")
    ).json()
    assert state["state"]["features"]["orders_count_90d"] == 1.0


def _id(client, as_user, ext: str) -> int:  # type: ignore[no-untyped-def]
    items = client.get("/api/v1/customers", params={"q": ext}, headers=as_user("root")).json()[
        "items"
    ]
    return int(next(c["id"] for c in items if c["external_id"] == ext))


def test_sales_cannot_post_events_and_sees_only_own_alerts_and_cases(client, as_user) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/events", json=[BREACH_C2], headers=as_user("alice"))
    assert r.status_code == 403
    client.post("/api/v1/events", json=[BREACH_C2], headers=as_user("rita"))
    bob = client.get("/api/v1/alerts", headers=as_user("bob")).json()["items"]
    assert [(a["customer"], a["rule"]) for a in bob] == [("C002", "contract_breach")]
    assert client.get("/api/v1/alerts", headers=as_user("alice")).json()["items"] == []
    case_id = bob[0]["case_id"]
    assert client.get(f"/api/v1/cases/{case_id}", headers=as_user("alice")).status_code == 404
    assert (
        client.post(f"/api/v1/cases/{case_id}/acknowledge", headers=as_user("alice")).status_code
        == 404
    )
    detail = client.get(
        f"/api/v1/cases/{case_id}", params={"lang": "zh"}, headers=as_user("bob")
    ).json()
    assert detail["assignee"] == "bob"
    assert detail["alerts"][0]["title"] == "违反合同条款"
    assert detail["playbooks"]["contract_breach"]["en"]


def test_case_acknowledge_comment_resolve(client, as_user) -> None:  # type: ignore[no-untyped-def]
    client.post("/api/v1/events", json=[BREACH_C2], headers=as_user("rita"))
    case_id = client.get("/api/v1/cases", headers=as_user("rita")).json()["items"][0]["id"]
    h = as_user("rita")
    assert (
        client.post(f"/api/v1/cases/{case_id}/acknowledge", headers=h).json()["status"]
        == "acknowledged"
    )
    assert client.post(f"/api/v1/cases/{case_id}/acknowledge", headers=h).status_code == 409
    assert (
        client.post(
            f"/api/v1/cases/{case_id}/comments", json={"body": "called"}, headers=h
        ).status_code
        == 201
    )
    r = client.post(f"/api/v1/cases/{case_id}/resolve", json={"outcome": "nope"}, headers=h)
    assert r.status_code == 422
    r = client.post(f"/api/v1/cases/{case_id}/resolve", json={"outcome": "false_alarm"}, headers=h)
    assert r.json()["status"] == "resolved" and r.json()["outcome"] == "false_alarm"
    assert client.get("/api/v1/alerts", headers=h).json()["items"] == []
    # the auditor reads but cannot change
    assert client.get(f"/api/v1/cases/{case_id}", headers=as_user("audrey")).status_code == 200
    assert (
        client.post(
            f"/api/v1/cases/{case_id}/comments", json={"body": "x"}, headers=as_user("audrey")
        ).status_code
        == 403
    )


def test_rule_sets_are_validated_drafted_and_published(client, as_user) -> None:  # type: ignore[no-untyped-def]
    h = as_user("rita")
    bad = {
        "rules": [
            {
                "id": "x",
                "severity": "high",
                "title": {"en": "a", "zh": "b"},
                "playbook": {"en": "a", "zh": "b"},
                "when": {"field": "state.overdue_balance", "op": "=~", "value": 1},
            }
        ]
    }
    r = client.post("/api/v1/rules", json=bad, headers=h)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "unknown operator" in r.json()["detail"]
    good = {
        "rules": [
            dict(bad["rules"][0], when={"field": "event.type", "op": "==", "value": "order.placed"})
        ]
    }
    assert client.post("/api/v1/rules", json=good, headers=as_user("alice")).status_code == 403
    r = client.post("/api/v1/rules", json=good, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "draft"
    version = r.json()["version"]
    client.post("/api/v1/events", json=[ORDER_C1], headers=h)
    dry = client.post(f"/api/v1/rules/{version}/dry-run", headers=h).json()
    assert dry["by_rule"] == {"x": 1}
    assert (
        client.post(f"/api/v1/rules/{version}/publish", headers=h).json()["status"] == "published"
    )
    assert client.post(f"/api/v1/rules/{version}/publish", headers=h).status_code == 409
    versions = client.get("/api/v1/rules", headers=h).json()["items"]
    assert [v["status"] for v in versions] == ["retired", "published"]


def test_inbox_case_page_and_panels_show_the_alert(client, as_user) -> None:  # type: ignore[no-untyped-def]
    client.post("/api/v1/events", json=[BREACH_C2], headers=as_user("rita"))
    h = as_user("bob")
    inbox = client.get("/monitor/alerts", params={"lang": "zh"}, headers=h)
    assert inbox.status_code == 200
    assert "预警收件箱" in inbox.text and "违反合同条款" in inbox.text
    case_id = client.get("/api/v1/cases", headers=h).json()["items"][0]["id"]
    page = client.get(f"/monitor/cases/{case_id}", headers=h)
    assert page.status_code == 200
    assert "记录违约情况" in page.text  # the playbook, in bob's language
    assert client.get(f"/monitor/cases/{case_id}", headers=as_user("alice")).status_code == 404
    cust = client.get(f"/customers/{_id(client, as_user, 'C002')}", headers=h)
    assert "实时监控" in cust.text and "违反合同条款" in cust.text
    en = client.get(f"/monitor/cases/{case_id}", params={"lang": "en"}, headers=h)
    assert "Document the breach" in en.text
    home = client.get("/", headers=h)
    assert "data-severity='high'>1<" in home.text  # one open high case on the dashboard
    ack = client.post(f"/monitor/cases/{case_id}/acknowledge", headers=h, follow_redirects=False)
    assert ack.status_code == 303
    assert client.get(f"/api/v1/cases/{case_id}", headers=h).json()["status"] == "acknowledged"


def test_out_of_range_ids_are_client_errors_not_500(client, as_user) -> None:  # type: ignore[no-untyped-def]
    h = as_user("rita")
    for path in (
        "/api/v1/cases/9223372036854775808",
        "/api/v1/rules/99999999999",
        "/api/v1/cases/0",
        "/monitor/cases/9223372036854775808",
    ):
        assert client.get(path, headers=h).status_code in (404, 422), path
    assert client.get("/api/v1/cases/2147483647", headers=h).status_code == 404
    assert client.post("/api/v1/events", json={"not": "a list"}, headers=h).status_code == 422


def test_a_batch_that_keeps_meeting_newer_states_is_refused_with_503_and_can_be_resent(
    client, as_user, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Other intake processes kept rewriting the batch's customers: the client is told to send
    the same batch again (503 + Retry-After), nothing of it was stored, and the resend applies."""
    from riskdesk.store import monitor_repo as repo

    def always_stale(*args: Any, **kwargs: Any) -> Any:
        raise repo._Conflict("written by another process")

    monkeypatch.setattr(repo, "_save_states", always_stale)
    r = client.post("/api/v1/events", json=[ORDER_C1], headers=as_user("rita"))
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "1"
    assert "send the same batch again" in r.json()["detail"]
    monkeypatch.undo()
    again = client.post("/api/v1/events", json=[ORDER_C1], headers=as_user("rita")).json()
    assert (again["accepted"], again["duplicates"]) == (1, 0)


def test_a_nul_character_in_a_body_is_refused_before_anything_is_stored(client, as_user) -> None:  # type: ignore[no-untyped-def]
    """A case comment, a rule set or a form holding a NUL character is a 422 on both
    databases, and nothing is stored (PostgreSQL failed the comment's INSERT with a 500;
    SQLite stored it). The six characters ``\\u0000`` written as text are no NUL."""
    h = as_user("rita")
    client.post("/api/v1/events", json=[BREACH_C2], headers=h)
    case_id = client.get("/api/v1/cases", headers=h).json()["items"][0]["id"]
    url = f"/api/v1/cases/{case_id}/comments"
    r = client.post(url, json={"body": "called\x00back"}, headers=h)
    assert r.status_code == 422 and "NUL character" in r.json()["detail"], r.text
    as_json = {**h, "content-type": "application/json"}
    r = client.post(url, content=b'{"body": "called\\\\u0000back"}', headers=as_json)
    assert r.status_code == 201, r.text
    comments = client.get(f"/api/v1/cases/{case_id}", headers=h).json()["comments"]
    assert [c["body"] for c in comments] == ["called\\u0000back"]
    rule = {
        "id": "x",
        "severity": "high",
        "title": {"en": "a\x00", "zh": "b"},
        "playbook": {"en": "a", "zh": "b"},
        "when": {"field": "event.type", "op": "==", "value": "order.placed"},
    }
    before = client.get("/api/v1/rules", headers=h).json()["items"]
    r = client.post("/api/v1/rules", json={"rules": [rule]}, headers=h)
    assert r.status_code == 422 and "NUL character" in r.json()["detail"]
    assert client.get("/api/v1/rules", headers=h).json()["items"] == before
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = client.post("/login", content=b"username=rita%00&password=x", headers=form)
    assert r.status_code == 422 and "NUL character" in r.json()["detail"]


def test_a_json_body_over_the_limit_is_refused_for_token_requests_too(  # type: ignore[no-untyped-def]
    client, as_user, monkeypatch
) -> None:
    """A token request's JSON body larger than the body limit (the cookie sessions' limit,
    RISKDESK_IMPORT_MAX_UPLOAD_MB plus 64 KiB) is a 413, declared or streamed, and nothing is
    stored; within the limit it is taken as before."""
    from riskdesk.api import security

    h = {**as_user("rita"), "content-type": "application/json"}
    client.post("/api/v1/events", json=[BREACH_C2], headers=as_user("rita"))
    case_id = client.get("/api/v1/cases", headers=h).json()["items"][0]["id"]
    url = f"/api/v1/cases/{case_id}/comments"
    body = b'{"body": "' + b"x" * 5000 + b'"}'
    monkeypatch.setattr(security, "FORM_OVERHEAD", 0)
    monkeypatch.setattr(security.get_settings(), "import_max_upload_mb", 0)
    r = client.post(url, content=body, headers=h)
    assert r.status_code == 413 and r.json()["title"] == "Content too large", r.text

    def chunks() -> Any:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    r = client.post(url, content=chunks(), headers=h)
    assert r.status_code == 413
    assert client.get(f"/api/v1/cases/{case_id}", headers=h).json()["comments"] == []
    monkeypatch.setattr(security, "FORM_OVERHEAD", len(body))
    assert client.post(url, content=chunks(), headers=h).status_code == 201


def test_a_risk_manager_rebuilds_states_from_the_stored_events(client, as_user) -> None:  # type: ignore[no-untyped-def]
    """``POST /api/v1/monitor/rebuild``: risk managers only; a named customer without state or
    events is refused with nothing done; the rebuilt states equal the ones the intake kept."""
    client.post("/api/v1/events", json=[BREACH_C2, ORDER_C1], headers=as_user("rita"))
    before = client.get(
        f"/api/v1/customers/{_id(client, as_user, 'C001')}/monitor", headers=as_user("rita")
    ).json()
    assert before["state"]["features"]["orders_count_90d"] == 1.0
    url = "/api/v1/monitor/rebuild"
    assert client.post(url, json={"all": True}, headers=as_user("alice")).status_code == 403
    assert client.post(url, json={"all": True}, headers=as_user("audrey")).status_code == 403
    r = client.post(url, json={}, headers=as_user("rita"))
    assert r.status_code == 422
    r = client.post(url, json={"customers": ["C001", "ZZZ"]}, headers=as_user("rita"))
    assert r.status_code == 422 and "'ZZZ'" in r.json()["detail"]
    r = client.post(url, json={"customers": ["C001"]}, headers=as_user("rita"))
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("customers", "applied", "skipped", "changed")} == {
        "customers": 1,
        "applied": 1,
        "skipped": 0,
        "changed": 0,
    }
    r = client.post(url, json={"all": True}, headers=as_user("rita"))
    assert (r.json()["customers"], r.json()["applied"]) == (2, 2)
    after = client.get(
        f"/api/v1/customers/{_id(client, as_user, 'C001')}/monitor", headers=as_user("rita")
    ).json()
    assert after["state"] == before["state"]


def test_users_subscribe_themselves_to_alerts_and_stop(client, as_user) -> None:  # type: ignore[no-untyped-def]
    """``/api/v1/subscriptions``: a risk manager subscribes a webhook (its secret is in that
    answer only) and an e-mail digest, lists only their own, and stops one; a sales user
    subscribes too (hearing only about their own customers); an auditor changes nothing."""
    url = "/api/v1/subscriptions"
    hook = {"channel": "webhook", "target": "https://hooks.example.com/r", "min_severity": "high"}
    r = client.post(url, json=hook, headers=as_user("rita"))
    assert r.status_code == 201, r.text
    made = r.json()
    assert len(made["secret"]) == 64 and made["min_severity"] == "high"
    mail = {"channel": "email", "target": "rita@example.com", "digest": True}
    assert client.post(url, json=mail, headers=as_user("rita")).status_code == 201
    bad = {"channel": "email", "target": "not-an-address"}
    r = client.post(url, json=bad, headers=as_user("rita"))
    assert r.status_code == 422 and "address" in r.json()["detail"]
    assert client.post(url, json=mail, headers=as_user("audrey")).status_code == 403
    mine = client.get(url, headers=as_user("rita")).json()["items"]
    assert [(x["channel"], x["digest"], x["active"]) for x in mine] == [
        ("email", True, True),
        ("webhook", False, True),
    ]
    assert all("secret" not in x for x in mine)
    assert client.get(url, headers=as_user("audrey")).json()["items"] == []
    assert client.get(url, params={"all": "true"}, headers=as_user("rita")).status_code == 403
    assert client.post(url, json=mail, headers=as_user("alice")).status_code == 201
    # a webhook makes the server POST to any URL it names: admins and risk managers only
    assert client.post(url, json=hook, headers=as_user("alice")).status_code == 403
    assert len(client.get(url, headers=as_user("alice")).json()["items"]) == 1
    everyone = client.get(url, params={"all": "true"}, headers=as_user("root")).json()["items"]
    assert len(everyone) == 3
    stop = f"{url}/{made['id']}/deactivate"
    assert client.post(stop, headers=as_user("audrey")).status_code == 403  # changes nothing
    roots = client.post(url, json=mail, headers=as_user("root")).json()["id"]
    r = client.post(f"{url}/{roots}/deactivate", headers=as_user("rita"))
    assert r.status_code == 404  # another user's: not found for rita
    r = client.post(stop, headers=as_user("rita"))
    assert r.status_code == 200 and r.json()["active"] is False
