"""Notifications over real wire protocols: a local HTTP receiver and a local SMTP server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import date
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select
from tests.seed import WebhookReceiver

from riskdesk.connectors.notify import (
    SIGNATURE_HEADER,
    EmailSender,
    WebhookSender,
    dispatch_pending,
    replay_dead_letters,
    sign,
    verify_signature,
)
from riskdesk.store import monitor_repo
from riskdesk.store.db import session_scope
from riskdesk.store.models import Case, Customer, Delivery
from riskdesk.store.users import add_user


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield box, port
    finally:
        ctl.stop()


FAST = WebhookSender(attempts=3, base_delay=0.01, timeout=2)


def test_signature_round_trip_and_tamper_detection() -> None:
    body = b'{"a":1}'
    sig = sign("s3cret", body)
    assert sig.startswith("sha256=") and verify_signature("s3cret", body, sig)
    assert not verify_signature("s3cret", b'{"a":2}', sig)
    assert not verify_signature("other", body, sig)
    assert not verify_signature("s3cret", body, None)


def test_webhook_is_retried_with_back_off_then_delivered(receiver: WebhookReceiver) -> None:
    receiver.fail_next = 2
    delays: list[float] = []
    sender = WebhookSender(attempts=4, base_delay=0.01, sleep=lambda d: delays.append(d))
    tries = sender.send(receiver.url, {"x": 1}, "k")
    assert tries == 3
    assert delays == [0.01, 0.02]  # exponential
    headers, body = receiver.requests[0]
    assert verify_signature("k", body, headers[SIGNATURE_HEADER])


def _ev(eid: str, kind: str, day: str, **payload: object) -> dict[str, object]:
    return {
        "event_id": eid,
        "type": kind,
        "event_time": f"{day}T09:00:00Z",
        "customer_id": "TROUBLE",
        "payload": payload,
    }


def test_a_customer_driven_into_trouble_raises_alert_case_webhook_and_email(
    engine: Engine, receiver: WebhookReceiver, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    with session_scope(engine) as s:
        s.add(Customer(external_id="TROUBLE", name="Trouble GmbH", currency="EUR", owner="sally"))
        add_user(s, "sally", "sales", "password123", email="sally@example.com")
        hook = monitor_repo.add_subscription(s, "webhook", receiver.url, min_severity="high")
        secret = hook.secret
        monitor_repo.add_subscription(s, "email", "credit@example.com", min_severity="high")
    assert secret
    history = []
    # three invoices, each paid 40+ days late: the payment behaviour deteriorates
    for k, (issue, due, paid) in enumerate(
        [
            ("2026-01-02", "2026-02-01", "2026-03-15"),
            ("2026-02-01", "2026-03-03", "2026-04-20"),
            ("2026-03-01", "2026-03-31", "2026-05-15"),
        ]
    ):
        history.append(
            _ev(
                f"t-i{k}",
                "invoice.issued",
                issue,
                invoice_id=f"TI{k}",
                issue_date=issue,
                due_date=due,
                amount="10000.00",
                currency="EUR",
            )
        )
        history.append(
            _ev(
                f"t-p{k}",
                "payment.received",
                paid,
                payment_id=f"TP{k}",
                payment_date=paid,
                amount="10000.00",
                currency="EUR",
                allocations=[{"invoice_id": f"TI{k}", "amount": "10000.00"}],
            )
        )
    # an invoice left unpaid, now 40 days overdue
    history.append(
        _ev(
            "t-i9",
            "invoice.issued",
            "2026-04-01",
            invoice_id="TI9",
            issue_date="2026-04-01",
            due_date="2026-05-01",
            amount="8000.00",
            currency="EUR",
        )
    )
    history.sort(key=lambda e: str(e["event_time"]))
    # then a large order
    history.append(
        _ev(
            "t-o1",
            "order.placed",
            "2026-06-10",
            order_id="TO1",
            order_date="2026-06-10",
            amount="25000.00",
            currency="EUR",
        )
    )
    with session_scope(engine) as s:
        res = monitor_repo.ingest(s, history)
    assert res.accepted == len(history) and not res.rejected
    with session_scope(engine) as s:
        st = monitor_repo.customer_state(s, "TROUBLE")
        assert st is not None
        assert st["features"]["dbt_wavg_paid_180d"] == pytest.approx((42 + 48 + 45) / 3)
        assert st["features"]["overdue_31_60"] == 8000.0
        alerts = {a.rule_id: a for a in monitor_repo.list_alerts(s, customer="TROUBLE")}
        assert {"large_order_while_overdue", "overdue_31", "points_total"} <= set(alerts)
        assert alerts["large_order_while_overdue"].severity == "high"
        assert alerts["large_order_while_overdue"].event_id == "t-o1"
        cases = list(s.scalars(select(Case)))
        assert len(cases) == 1 and cases[0].assignee == "sally"
        assert {a.case_id for a in alerts.values()} == {cases[0].id}
    sent = dispatch_pending(engine, webhook=FAST, email=EmailSender("127.0.0.1", port, "rd@local"))
    assert sent["dead"] == 0 and sent["sent"] >= 2
    bodies = []
    for headers, body in receiver.requests:
        assert verify_signature(secret, body, headers[SIGNATURE_HEADER])
        bodies.append(json.loads(body))
    rules = {b["rule"] for b in bodies}
    assert "large_order_while_overdue" in rules
    assert all(b["customer"] == "TROUBLE" and b["severity"] in ("high", "critical") for b in bodies)
    assert any("先支付" in b["playbook"]["zh"] for b in bodies)
    subjects = [m["Subject"] for m in box.messages]
    assert any("Large order while invoices are overdue" in sub for sub in subjects)
    assert all(m["To"] == "credit@example.com" for m in box.messages)
    # replaying the same events raises nothing new and sends nothing new
    with session_scope(engine) as s:
        again = monitor_repo.ingest(s, history)
    assert (again.accepted, again.duplicates, again.alerts_new) == (0, len(history), 0)
    assert dispatch_pending(engine, webhook=FAST) == {"sent": 0, "dead": 0}


def test_failed_webhook_goes_to_dead_letters_and_can_be_replayed(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    with session_scope(engine) as s:
        monitor_repo.add_subscription(s, "webhook", receiver.url, min_severity="low", secret="k")
        monitor_repo.ingest(
            s, [_ev("d1", "contract.breached", "2026-01-05", clause="payment_terms")]
        )
    receiver.fail_next = 10
    assert dispatch_pending(engine, webhook=FAST) == {"sent": 0, "dead": 1}
    with session_scope(engine) as s:
        d = s.scalars(select(Delivery)).one()
        assert d.status == "dead" and d.attempts == 3 and "503" in (d.last_error or "")
    receiver.fail_next = 0
    out = replay_dead_letters(engine, webhook=FAST)
    assert out == {"replayed": 1, "sent": 1, "dead": 0}
    assert json.loads(receiver.requests[0][1])["rule"] == "contract_breach"
    with session_scope(engine) as s:
        assert s.scalars(select(Delivery)).one().status == "sent"


def test_clock_escalates_a_case_not_acknowledged_within_its_sla(engine: Engine) -> None:
    from datetime import UTC, datetime, timedelta

    with session_scope(engine) as s:
        monitor_repo.ingest(s, [_ev("x1", "contract.breached", "2026-01-05", clause="x")])
    with session_scope(engine) as s:
        case = s.scalars(select(Case)).one()
        assert case.severity == "high" and case.escalation_level == 0
        later = case.opened_at + timedelta(hours=25)
    with session_scope(engine) as s:
        out = monitor_repo.clock_tick(s, date(2026, 1, 6), now=later)
    assert out["cases_escalated"] == 1
    with session_scope(engine) as s:
        assert s.scalars(select(Case)).one().escalation_level == 1
        monitor_repo.acknowledge_case(s, s.scalars(select(Case)).one().id, actor="bob")
    with session_scope(engine) as s:
        out = monitor_repo.clock_tick(
            s, date(2026, 1, 7), now=datetime.now(UTC) + timedelta(days=9)
        )
    assert out["cases_escalated"] == 0
