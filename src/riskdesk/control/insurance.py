"""Transfer: credit insurance deadlines and insured-limit renewals, as control tasks.

Insurers require overdue buyers to be reported within a set number of days past due (e.g. 60);
a task is due ``lead_days`` before that deadline so the deadline never passes unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class PolicyTerms:
    id: int
    insurer: str
    report_overdue_days: int
    valid_until: date | None = None


@dataclass(frozen=True)
class InsuredBuyer:
    customer_id: int
    policy_id: int
    insured_limit_id: int
    valid_until: date | None = None


@dataclass(frozen=True)
class OverdueInvoice:
    invoice_id: int
    customer_id: int
    due_date: date


@dataclass(frozen=True)
class DeadlineTask:
    kind: str  # report_to_insurer | take_insurance
    customer_id: int
    due_date: date
    deadline: date
    dedup_key: str
    title_en: str
    title_zh: str
    cause_id: int
    late: bool = False


def insurer_tasks(
    buyers: Sequence[InsuredBuyer],
    policies: Sequence[PolicyTerms],
    overdue: Sequence[OverdueInvoice],
    as_of: date,
    lead_days: int = 10,
) -> list[DeadlineTask]:
    """Tasks for every insured buyer that must be reported or whose cover runs out soon.

    One report task per buyer and policy for its oldest overdue invoice, due ``lead_days``
    before the insurer's deadline (due date + ``report_overdue_days``) and created as soon as
    the invoice is overdue; ``late`` when the deadline has already passed.
    """
    by_policy = {p.id: p for p in policies}
    oldest: dict[int, OverdueInvoice] = {}
    for inv in overdue:
        if inv.due_date >= as_of:
            continue
        cur = oldest.get(inv.customer_id)
        if cur is None or inv.due_date < cur.due_date:
            oldest[inv.customer_id] = inv
    tasks: list[DeadlineTask] = []
    for b in buyers:
        pol = by_policy.get(b.policy_id)
        if pol is None:
            continue
        first = oldest.get(b.customer_id)
        if first is not None:
            deadline = first.due_date + timedelta(days=pol.report_overdue_days)
            due = max(as_of, deadline - timedelta(days=lead_days))
            tasks.append(
                DeadlineTask(
                    "report_to_insurer",
                    b.customer_id,
                    min(due, deadline) if deadline >= as_of else as_of,
                    deadline,
                    f"insurer-report:{pol.id}:{b.customer_id}:{first.invoice_id}",
                    f"Report overdue buyer to {pol.insurer} by {deadline.isoformat()}",
                    f"须在 {deadline.isoformat()} 前向 {pol.insurer} 申报逾期买方",
                    first.invoice_id,
                    late=deadline < as_of,
                )
            )
        ends = b.valid_until
        if ends is not None and as_of <= ends <= as_of + timedelta(days=lead_days * 3):
            tasks.append(
                DeadlineTask(
                    "take_insurance",
                    b.customer_id,
                    max(as_of, ends - timedelta(days=lead_days)),
                    ends,
                    f"insured-limit-renewal:{b.insured_limit_id}:{ends.isoformat()}",
                    f"Insured limit with {pol.insurer} ends {ends.isoformat()}: renew it",
                    f"{pol.insurer} 的承保额度于 {ends.isoformat()} 到期：请续保",
                    b.insured_limit_id,
                )
            )
    return tasks
