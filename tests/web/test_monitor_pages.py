"""Web pages of the rule sets: versions, a version's rules and JSON edited into a new draft
(refused drafts keep the text), dry run and publish — by role, in English and Chinese."""

from __future__ import annotations

import html
import json
import re

from sqlalchemy import select

from riskdesk.store import monitor_repo as repo
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import AuditEntry


def _textarea(page: str) -> str:
    m = re.search(r'<textarea name="body"[^>]*>(.*?)</textarea>', page, re.S)
    assert m, "no rule set editor on the page"
    return html.unescape(m.group(1))


def test_a_risk_manager_edits_dry_runs_and_publishes_a_rule_set(web, login, portfolio):
    token = login("rita")
    listing = web.get("/monitor/rules")
    assert listing.status_code == 200
    assert 'data-version="1" data-status="published"' in listing.text
    page = web.get("/monitor/rules/1")
    assert 'data-rule="overdue_31"' in page.text
    body = json.loads(_textarea(page.text))  # the published rules, as JSON to edit
    body["rules"] = [r for r in body["rules"] if r["id"] != "bureau_drop"]
    r = web.post(
        "/monitor/rules",
        data={
            "base": "1",
            "body": json.dumps(body),
            "note": "no bureau alerts",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/monitor/rules/2"
    draft = web.get("/monitor/rules/2").text
    assert 'data-status="draft"' in draft and 'data-rule="bureau_drop"' not in draft
    assert "no bureau alerts" in draft
    r = web.post("/monitor/rules/2/dry-run", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert 'id="dry-run-result"' in web.get("/monitor/rules/2").text
    r = web.post(
        "/monitor/rules/2/publish",
        data={"reason": "bureau scores come late", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    eng = make_engine(portfolio.url)
    try:
        with session_scope(eng) as s:
            engine = repo.published_engine(s)
            assert engine is not None and engine.version == 2
            assert [rs.status for rs in repo.list_rule_sets(s)] == ["retired", "published"]
            actions = list(s.scalars(select(AuditEntry.action)))
    finally:
        eng.dispose()
    assert {"rules.draft", "rules.publish"} <= set(actions)
    again = web.post("/monitor/rules/2/publish", data={"csrf_token": token})
    assert again.status_code == 409  # already published: refused, nothing changed


def test_a_refused_draft_keeps_the_text_and_says_why(web, login, portfolio):
    token = login("rita")
    broken = '{"rules": [{"id": "x", "severity": "high",'  # cut short
    r = web.post("/monitor/rules", data={"base": "1", "body": broken, "csrf_token": token})
    assert r.status_code == 422
    assert 'id="form-error"' in r.text and "JSON" in r.text
    assert _textarea(r.text) == broken  # nothing typed is lost
    bad_op = {
        "rules": [
            {
                "id": "x",
                "severity": "high",
                "title": {"en": "x", "zh": "x"},
                "playbook": {"en": "x", "zh": "x"},
                "when": {"field": "state.overdue_balance", "op": "__import__", "value": 1},
            }
        ]
    }
    text = json.dumps(bad_op, indent=1)
    r = web.post(
        "/monitor/rules", data={"base": "1", "body": text, "note": "n", "csrf_token": token}
    )
    assert r.status_code == 422 and "__import__" in html.unescape(r.text)
    assert _textarea(r.text) == text
    eng = make_engine(portfolio.url)
    try:
        with session_scope(eng) as s:
            assert [rs.version for rs in repo.list_rule_sets(s)] == [1]  # nothing stored
    finally:
        eng.dispose()


def test_who_sees_and_who_changes_rule_sets(web, login):
    login("audrey")  # an auditor reads, without the editor or the buttons
    page = web.get("/monitor/rules/1")
    assert page.status_code == 200 and 'id="draft-form"' not in page.text
    assert 'id="publish-btn"' not in page.text and 'href="/monitor/rules"' in page.text
    token = login("audrey")
    r = web.post("/monitor/rules/1/dry-run", data={"csrf_token": token})
    assert r.status_code == 403
    login("alice")  # sales: no rules page and no menu entry for it
    assert web.get("/monitor/rules").status_code == 403
    assert 'href="/monitor/rules"' not in web.get("/").text
    login("rita")
    zh = web.get("/monitor/rules", params={"lang": "zh"})
    assert "预警规则集" in zh.text and "已发布" in zh.text


def _breach_case(url: str) -> int:
    """A contract breach of C002 (bob's customer): one alert, one case; the case's id."""
    from tests.seed import api_event

    from riskdesk.store.models import Case

    eng = make_engine(url)
    try:
        with session_scope(eng) as s:
            repo.ingest(s, [api_event("w1", "contract.breached", "C002", clause="volume")])
        with session_scope(eng) as s:
            return int(s.scalars(select(Case.id)).one())
    finally:
        eng.dispose()


def test_a_rule_is_snoozed_for_the_customer_from_its_case_page(web, login, portfolio):
    from datetime import timedelta

    from riskdesk.store.models import Snooze
    from riskdesk.store.types import utcnow

    case_id = _breach_case(portfolio.url)
    token = login("rita")
    page = web.get(f"/monitor/cases/{case_id}").text
    assert 'id="snooze-form"' in page and '<option value="contract_breach"' in page
    url = f"/monitor/cases/{case_id}/snooze"
    past = (utcnow().date() - timedelta(days=1)).isoformat()
    r = web.post(
        url,
        data={
            "rule": "contract_breach",
            "until": past,
            "reason": "talked to them",
            "csrf_token": token,
        },
    )
    assert r.status_code == 422 and 'id="form-error"' in r.text
    assert 'value="talked to them"' in r.text and f'value="{past}"' in r.text  # kept
    r = web.post(
        url,
        data={"rule": "contract_breach", "until": "2099-01-01", "reason": " ", "csrf_token": token},
        params={"lang": "zh"},
    )
    assert r.status_code == 422 and "暂停须填写原因" in r.text
    until = (utcnow().date() + timedelta(days=30)).isoformat()
    r = web.post(
        url,
        data={
            "rule": "contract_breach",
            "until": until,
            "reason": "volume renegotiated",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    eng = make_engine(portfolio.url)
    try:
        with session_scope(eng) as s:
            sn = s.scalars(select(Snooze)).one()
            assert (sn.customer_ref, sn.rule_id, sn.until.isoformat(), sn.reason) == (
                "C002",
                "contract_breach",
                until,
                "volume renegotiated",
            )
            assert "alert.snooze" in set(s.scalars(select(AuditEntry.action)))
    finally:
        eng.dispose()
    token = login("alice")  # another salesperson's customer: no such case for her
    r = web.post(
        url, data={"rule": "contract_breach", "until": until, "reason": "x", "csrf_token": token}
    )
    assert r.status_code == 404


def test_a_user_manages_their_own_alert_notifications(web, login, portfolio):
    token = login("rita")
    page = web.get("/monitor/notifications")
    assert page.status_code == 200 and 'id="subscribe-form"' in page.text
    r = web.post(
        "/monitor/notifications",
        data={
            "channel": "email",
            "target": "rita-at-example",
            "min_severity": "high",
            "digest": "1",
            "csrf_token": token,
        },
    )
    assert r.status_code == 422 and 'id="form-error"' in r.text
    assert 'value="rita-at-example"' in r.text and "checked" in r.text  # kept as typed
    r = web.post(
        "/monitor/notifications",
        data={
            "channel": "webhook",
            "target": "https://hooks.example.com/x",
            "min_severity": "critical",
            "csrf_token": token,
        },
    )
    assert r.status_code == 201 and 'id="webhook-secret"' in r.text  # shown this once
    listed = web.get("/monitor/notifications").text
    assert 'id="webhook-secret"' not in listed and 'data-active="yes"' in listed
    sub_id = re.search(r'data-id="(\d+)"', listed).group(1)  # type: ignore[union-attr]
    r = web.post(
        f"/monitor/notifications/{sub_id}/deactivate",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert 'data-active="no"' in web.get("/monitor/notifications", params={"lang": "zh"}).text
    login("alice")  # sales: their own list (empty), to hear about their own customers
    mine = web.get("/monitor/notifications")
    assert mine.status_code == 200 and 'class="subscription-row"' not in mine.text
    assert '<option value="webhook"' not in mine.text  # e-mail only for her
    login("audrey")  # an auditor reads and changes nothing: no notifications of their own
    assert web.get("/monitor/notifications").status_code == 403


def _customer_id(url: str, ext: str) -> int:
    from riskdesk.store.models import Customer

    eng = make_engine(url)
    try:
        with session_scope(eng) as s:
            return int(s.scalars(select(Customer.id).where(Customer.external_id == ext)).one())
    finally:
        eng.dispose()


def test_the_whole_state_page_and_a_rebuild_from_it(web, login, portfolio):
    _breach_case(portfolio.url)  # C002 has a state now
    cid = _customer_id(portfolio.url, "C002")
    token = login("rita")
    customer = web.get(f"/customers/{cid}").text
    assert f"/monitor/customers/{cid}/state" in customer  # from the monitoring panel
    page = web.get(f"/monitor/customers/{cid}/state")
    assert page.status_code == 200 and 'data-feature="breaches_count"' in page.text
    assert 'id="rebuild-form"' in page.text
    r = web.post(f"/monitor/customers/{cid}/state/rebuild", data={"csrf_token": token})
    assert r.status_code == 200 and 'id="rebuilt"' in r.text
    assert "The figures are as they were." in r.text
    token = login("bob")  # C002's salesperson: reads it, cannot rebuild
    page = web.get(f"/monitor/customers/{cid}/state")
    assert page.status_code == 200 and 'id="rebuild-form"' not in page.text
    r = web.post(f"/monitor/customers/{cid}/state/rebuild", data={"csrf_token": token})
    assert r.status_code == 403
    login("alice")  # another salesperson: no such customer for her
    assert web.get(f"/monitor/customers/{cid}/state").status_code == 404
