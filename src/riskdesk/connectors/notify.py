"""Notifications: signed webhooks (with retries and a dead-letter table) and SMTP e-mail.

Alerts write rows to the ``monitor_deliveries`` outbox in the intake transaction; the
functions here send them after the commit, so a crash never loses a notification (it is
sent at least once). A webhook body is JSON, signed with HMAC-SHA256 over the exact bytes:
``X-Riskdesk-Signature: sha256=<hex>`` (check it with :func:`verify_signature`). A delivery
that still fails after the retries (exponential back-off) is marked ``dead``;
:func:`replay_dead_letters` sends those again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import Engine, select, update

from riskdesk.config import get_settings
from riskdesk.store.db import session_scope
from riskdesk.store.models import Delivery, Subscription
from riskdesk.store.types import utcnow

SIGNATURE_HEADER = "X-Riskdesk-Signature"


class DeliveryError(RuntimeError):
    """A notification could not be delivered (after all retries)."""


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a signature header against the body."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header or "")


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class WebhookSender:
    """POST a signed JSON body; retry on network errors and 5xx/429 with exponential back-off."""

    attempts: int = 4
    base_delay: float = 0.5
    timeout: float = 5.0
    client: httpx.Client | None = None
    sleep: Callable[[float], None] = time.sleep

    def send(self, url: str, payload: dict[str, Any], secret: str | None) -> int:
        body = encode(payload)
        headers = {"Content-Type": "application/json", "User-Agent": "riskdesk-webhook"}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        client = self.client or httpx.Client(timeout=self.timeout)
        last = ""
        try:
            for attempt in range(self.attempts):
                if attempt:
                    self.sleep(self.base_delay * (2 ** (attempt - 1)))
                try:
                    r = client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                    continue
                if r.status_code < 300:
                    return attempt + 1
                last = f"HTTP {r.status_code}"
                if r.status_code < 500 and r.status_code != 429:
                    break  # a client error will not get better by retrying
            raise DeliveryError(last or "failed")
        finally:
            if self.client is None:
                client.close()


@dataclass
class EmailSender:
    """Send a plain-text e-mail through SMTP (``smtplib``)."""

    host: str = ""
    port: int = 0
    sender: str = ""
    timeout: float = 10.0

    def __post_init__(self) -> None:
        st = get_settings()
        self.host = self.host or st.smtp_host
        self.port = self.port or st.smtp_port
        self.sender = self.sender or st.smtp_from

    def send(self, to: str, subject: str, text: str) -> None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


def email_text(payload: dict[str, Any]) -> tuple[str, str]:
    """Subject and body (English and Chinese) for one alert or escalation payload."""
    if payload.get("kind") == "escalation":
        subject = f"[riskdesk] case {payload.get('case_id')} escalated ({payload.get('severity')})"
        body = (
            f"Case {payload.get('case_id')} for customer {payload.get('customer')} was not "
            f"acknowledged in time (level {payload.get('level')}).\n"
            f"客户 {payload.get('customer')} 的案件 {payload.get('case_id')} 未在时限内确认，已升级。\n"
        )
        return subject, body
    if payload.get("kind") == "digest":
        lines = [
            f"- {a['severity']}: {a['customer']} {a['rule']}" for a in payload.get("alerts", [])
        ]
        return (
            f"[riskdesk] daily digest: {len(lines)} alerts",
            "Alerts since the last digest / 自上次摘要以来的预警:\n" + "\n".join(lines) + "\n",
        )
    title = payload.get("title") or {}
    playbook = payload.get("playbook") or {}
    subject = (
        f"[riskdesk] {payload.get('severity', '').upper()} {payload.get('customer')}: "
        f"{title.get('en', payload.get('rule'))}"
    )
    body = (
        f"Customer: {payload.get('customer')} {payload.get('customer_name') or ''}\n"
        f"Alert: {title.get('en', payload.get('rule'))} ({payload.get('severity')})\n"
        f"Case: {payload.get('case_id')}\n\n"
        f"What to do: {playbook.get('en', '')}\n\n"
        f"客户：{payload.get('customer')}\n预警：{title.get('zh', payload.get('rule'))}\n"
        f"处理建议：{playbook.get('zh', '')}\n"
    )
    return subject, body


def dispatch_pending(
    engine: Engine,
    *,
    webhook: WebhookSender | None = None,
    email: EmailSender | None = None,
    limit: int = 200,
) -> dict[str, int]:
    """Send every pending delivery; mark each ``sent`` or ``dead`` (own small transaction)."""
    webhook = webhook or WebhookSender()
    with session_scope(engine) as s:
        rows = [
            (d.id, d.channel, d.target, d.payload, d.subscription_id)
            for d in s.scalars(
                select(Delivery)
                .where(Delivery.status == "pending")
                .order_by(Delivery.id)
                .limit(limit)
            )
        ]
        secrets = {
            sub.id: sub.secret
            for sub in s.scalars(
                select(Subscription).where(Subscription.id.in_({r[4] for r in rows if r[4]}))
            )
        }
    sent = dead = 0
    for did, channel, target, payload, sub_id in rows:
        error: str | None = None
        tries = 1
        try:
            if channel == "webhook":
                tries = webhook.send(target, payload, secrets.get(sub_id) if sub_id else None)
            else:
                subject, text = email_text(payload)
                (email or EmailSender()).send(target, subject, text)
        except DeliveryError as exc:
            error = str(exc)
            tries = webhook.attempts if channel == "webhook" else 1
        with session_scope(engine) as s:
            d = s.get(Delivery, did)
            if d is None:
                continue
            d.attempts += tries
            if error is None:
                d.status, d.sent_at, d.last_error = "sent", utcnow(), None
                sent += 1
            else:
                d.status, d.last_error = "dead", error[:1000]
                dead += 1
    return {"sent": sent, "dead": dead}


def replay_dead_letters(
    engine: Engine,
    *,
    webhook: WebhookSender | None = None,
    email: EmailSender | None = None,
) -> dict[str, int]:
    """Put every dead delivery back in the outbox and send it again."""
    with session_scope(engine) as s:
        n = s.execute(
            update(Delivery).where(Delivery.status == "dead").values(status="pending")
        ).rowcount  # type: ignore[attr-defined]
    out = dispatch_pending(engine, webhook=webhook, email=email, limit=max(n, 1))
    return {"replayed": int(n or 0), **out}


def queue_digests(engine: Engine, since: Any) -> int:
    """One digest delivery per digest subscription with the alerts raised since ``since``."""
    from riskdesk.domain.events import SEVERITY_RANK
    from riskdesk.store.models import Alert
    from riskdesk.store.monitor_repo import customer_owners, subscription_scopes

    with session_scope(engine) as s:
        alerts = list(s.scalars(select(Alert).where(Alert.first_seen >= since).order_by(Alert.id)))
        owners = customer_owners(s, (a.customer_id for a in alerts))
        subs = list(
            s.scalars(
                select(Subscription).where(
                    Subscription.digest.is_(True), Subscription.active.is_(True)
                )
            )
        )
        scopes = subscription_scopes(s, subs)  # a sales user's: their own customers only
        n = 0
        for sub in subs:
            rank = SEVERITY_RANK.get(sub.min_severity, 0)
            scope = scopes.get(sub.id)
            items = [
                {
                    "customer": a.customer_ref,
                    "rule": a.rule_id,
                    "severity": a.severity,
                    "case_id": a.case_id,
                }
                for a in alerts
                if SEVERITY_RANK.get(a.severity, 0) >= rank
                and (
                    scope is None
                    or (a.customer_id is not None and owners.get(a.customer_id) == scope)
                )
            ]
            if not items:
                continue
            s.add(
                Delivery(
                    subscription_id=sub.id,
                    channel=sub.channel,
                    target=sub.target,
                    payload={"kind": "digest", "alerts": items},
                    status="pending",
                    attempts=0,
                )
            )
            n += 1
    return n
