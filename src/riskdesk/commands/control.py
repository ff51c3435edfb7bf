"""``riskdesk control``, ``limits``, ``orders check``, ``holds``, ``insurance``, ``tasks``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.orm import Session

from riskdesk.commands._common import JsonOpt, console, emit, engine, fail
from riskdesk.control.limits import ApprovalRefused
from riskdesk.domain.money import MissingRate
from riskdesk.store import control_repo as repo
from riskdesk.store.audit import record
from riskdesk.store.db import session_scope
from riskdesk.store.models import BlocklistEntry, Customer

control_app = typer.Typer(
    help="Apply the control policies to the portfolio; concentration; blocklist; contracts.",
    invoke_without_command=True,
)
limits_app = typer.Typer(
    help="Credit limits, exposure and limit change requests.", no_args_is_help=True
)
orders_app = typer.Typer(help="Order credit checks.", no_args_is_help=True)
holds_app = typer.Typer(help="The approval queue of held orders.", no_args_is_help=True)
insurance_app = typer.Typer(
    help="Credit insurance, guarantees and letters of credit.", no_args_is_help=True
)
tasks_app = typer.Typer(
    help="Control actions (tasks with owners and due dates).", no_args_is_help=True
)

AsOf = Annotated[str | None, typer.Option("--as-of", help="Date (YYYY-MM-DD); default today.")]
By = Annotated[str, typer.Option("--by", help="Your user name (recorded in the audit log).")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]


def _date(value: str | None, as_json: bool, name: str = "date") -> date:
    if value is None:
        return repo.utcnow().date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{name} must be YYYY-MM-DD, got {value!r}", 2, as_json) from None


@contextmanager
def _guard(as_json: bool) -> Iterator[None]:
    """Turn bad input into a clear error and a non-zero exit (the transaction rolls back)."""
    try:
        yield
    except ApprovalRefused as exc:
        raise fail(f"refused: {exc}", 3, as_json) from None
    except (repo.ControlError, MissingRate, ValueError) as exc:
        raise fail(str(exc), 2, as_json) from None


def _customer(s: Session, key: str, as_json: bool) -> Customer:
    c = repo.find_customer(s, key)
    if c is None:
        raise fail(f"no customer {key!r}", 2, as_json)
    return c


def _table(title: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
    t = Table(title=title)
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
    console.print(t)


# ----------------------------------------------------------------------------- control


@control_app.callback()
def control(ctx: typer.Context, as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Apply the policies to the whole portfolio: policy limits for customers without a manual
    limit, insurer-deadline tasks, concentration breaches, contract-terms review."""
    if ctx.invoked_subcommand is not None:
        return
    on = _date(as_of, as_json, "--as-of")
    eng = engine(ctx)
    if as_json:
        out = repo.run_control(eng, on)
    else:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("control", total=5)

            def tick(done: int, total: int, msg: str) -> None:
                bar.update(task, completed=done, total=total, description=msg)

            out = repo.run_control(eng, on, tick)
    emit(out, as_json, _render_summary)


def _render_summary(o: dict[str, Any]) -> None:
    rows: list[dict[str, Any]] = []
    for k, v in o.items():
        if isinstance(v, dict):
            rows.extend({"item": f"{k}.{k2}", "value": v2} for k2, v2 in v.items())
        else:
            rows.append({"item": k, "value": v})
    _table("control run", rows, ["item", "value"])


@control_app.command("concentration")
def concentration_cmd(
    ctx: typer.Context, as_of: AsOf = None, top: int = 10, as_json: JsonOpt = False
) -> None:
    """Concentration by customer, group, industry, region and country (HHI, top-N, Gini)."""
    on = _date(as_of, as_json, "--as-of")
    with session_scope(engine(ctx)) as s:
        rep = repo.concentration_report(s, on)
    out = {
        "as_of": on,
        "currency": rep["currency"],
        "dimensions": {k: v.as_dict(top) for k, v in rep["dimensions"].items()},
        "breaches": [b.__dict__ for b in rep["breaches"]],
    }

    def render(o: dict[str, Any]) -> None:
        rows = [
            {
                "dimension": k,
                "total": v["total"],
                "hhi": v["hhi"],
                "gini": v["gini"],
                "top1": v["top_n_share"].get("1"),
                "top5": v["top_n_share"].get("5"),
            }
            for k, v in o["dimensions"].items()
        ]
        _table(f"concentration ({o['currency']})", rows, list(rows[0]) if rows else [])
        if o["breaches"]:
            _table("breaches", o["breaches"], ["dimension", "key", "share", "max_share"])

    emit(out, as_json, render)


@control_app.command("concentration-limit")
def concentration_limit_cmd(
    ctx: typer.Context,
    dimension: Annotated[str, typer.Argument(help="customer|group|industry|region|country")],
    max_share: Annotated[str, typer.Argument(help="Maximum share, e.g. 0.25")],
    by: By,
    key: Annotated[str | None, typer.Option(help="Only this key (default: every key).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a concentration limit."""
    with _guard(as_json), session_scope(engine(ctx)) as s:
        row = repo.add_concentration_limit(
            s, dimension=dimension, max_share=max_share, actor=by, key=key
        )
        out = {"id": row.id, "dimension": dimension, "key": key, "max_share": row.max_share}
    emit(out, as_json, None)


@control_app.command("block")
def block_cmd(
    ctx: typer.Context, customer: str, by: By, reason: Reason, as_json: JsonOpt = False
) -> None:
    """Put a customer on the blocklist (every order check then says stop)."""
    with _guard(as_json), session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        if not reason.strip():
            raise repo.ControlError("a reason is required")
        e = BlocklistEntry(
            customer_id=c.id, legal_id=c.legal_id, name=c.name, reason=reason, added_by=by
        )
        s.add(e)
        s.flush()
        record(
            s,
            actor=by,
            action="blocklist.add",
            entity="customer",
            entity_id=c.id,
            after={"entry": e.id},
            reason=reason,
        )
        out = {"id": e.id, "customer_id": c.id}
    emit(out, as_json, None)


@control_app.command("unblock")
def unblock_cmd(
    ctx: typer.Context, customer: str, by: By, reason: Reason, as_json: JsonOpt = False
) -> None:
    """Take a customer off the blocklist."""
    from sqlalchemy import select

    with _guard(as_json), session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        rows = s.scalars(
            select(BlocklistEntry).where(
                BlocklistEntry.customer_id == c.id, BlocklistEntry.active.is_(True)
            )
        ).all()
        if not rows:
            raise repo.ControlError(f"customer {customer!r} is not on the blocklist")
        for r in rows:
            r.active = False
        record(
            s, actor=by, action="blocklist.remove", entity="customer", entity_id=c.id, reason=reason
        )
        out = {"customer_id": c.id, "removed": len(rows)}
    emit(out, as_json, None)


@control_app.command("review-contracts")
def review_contracts_cmd(ctx: typer.Context, as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Contracts whose terms are looser than the avoidance policy for the customer's grade."""
    on = _date(as_of, as_json, "--as-of")
    with session_scope(engine(ctx)) as s:
        gaps = repo.contract_review(s, on)
    emit(
        {"as_of": on, "contracts": gaps},
        as_json,
        lambda o: _table(
            "contracts looser than policy",
            [
                {**g, "problems": ", ".join(p["code"] for p in g["problems"])}
                for g in o["contracts"]
            ],
            ["contract", "customer_id", "grade", "problems"],
        ),
    )


# ----------------------------------------------------------------------------- limits


@limits_app.command("show")
def limits_show(
    ctx: typer.Context, customer: str, as_of: AsOf = None, as_json: JsonOpt = False
) -> None:
    """A customer's limit, exposure (with the documents behind each figure) and headroom."""
    on = _date(as_of, as_json, "--as-of")
    with _guard(as_json), session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        lim = repo.current_limit(s, c.id, on)
        cfg = repo.load_config(s)
        exp = repo.customer_exposure(s, c, on, cfg=cfg)
        used = exp.net if cfg.limit_basis == "net" else exp.gross
        out = {
            "customer_id": c.id,
            "customer": c.external_id,
            "name": c.name,
            "limit": repo.limit_dict(lim) if lim else None,
            "exposure": exp.as_dict(),
            "basis": cfg.limit_basis,
            "used": used,
            "headroom": (lim.amount - used) if lim else None,
        }

    def render(o: dict[str, Any]) -> None:
        lim_txt = f"{o['limit']['amount']} {o['limit']['currency']}" if o["limit"] else "no limit"
        console.print(
            f"[bold]{o['customer']}[/] {o['name']} — limit {lim_txt}, "
            f"used ({o['basis']}) {o['used']}, headroom {o['headroom']}"
        )
        rows = [
            {"component": k, "amount": v["amount"], "documents": len(v["docs"])}
            for k, v in o["exposure"]["components"].items()
        ]
        _table(
            f"exposure in {o['exposure']['currency']}", rows, ["component", "amount", "documents"]
        )

    emit(out, as_json, render)


@limits_app.command("list")
def limits_list(ctx: typer.Context, limit: int = 100, as_json: JsonOpt = False) -> None:
    """Active limits."""
    from sqlalchemy import select

    from riskdesk.store.models import CreditLimit

    with session_scope(engine(ctx)) as s:
        rows = [
            repo.limit_dict(x)
            for x in s.scalars(
                select(CreditLimit)
                .where(CreditLimit.status == "active")
                .order_by(CreditLimit.id)
                .limit(limit)
            )
        ]
    emit(
        {"limits": rows},
        as_json,
        lambda o: _table(
            "limits",
            o["limits"],
            ["id", "customer_id", "group_key", "amount", "currency", "valid_until", "source"],
        ),
    )


@limits_app.command("history")
def limits_history(ctx: typer.Context, customer: str, as_json: JsonOpt = False) -> None:
    """Every version of a customer's limit, newest first."""
    with session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        rows = [repo.limit_dict(x) for x in repo.limit_history(s, c.id)]
    emit(
        {"customer_id": c.id, "history": rows},
        as_json,
        lambda o: _table(
            "limit history",
            o["history"],
            ["id", "amount", "currency", "status", "source", "created_by", "created_at", "reason"],
        ),
    )


@limits_app.command("set")
def limits_set(
    ctx: typer.Context,
    customer: str,
    amount: str,
    currency: str,
    by: By,
    reason: Reason,
    valid_until: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a limit by hand (an admin/risk manager decision; audited)."""
    with _guard(as_json), session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        until = _date(valid_until, as_json, "--valid-until") if valid_until else None
        lim = repo.set_limit(
            s,
            customer_id=c.id,
            amount=amount,
            currency=currency,
            actor=by,
            reason=reason,
            valid_until=until,
        )
        out = repo.limit_dict(lim)
    emit(out, as_json, None)


@limits_app.command("request")
def limits_request(
    ctx: typer.Context,
    customer: str,
    amount: str,
    by: By,
    reason: Reason,
    currency: Annotated[str | None, typer.Option(help="Default: the current limit's.")] = None,
    valid_until: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Request a limit change; someone else approves it."""
    with _guard(as_json), session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        until = _date(valid_until, as_json, "--valid-until") if valid_until else None
        r = repo.request_limit(
            s,
            customer_id=c.id,
            amount=amount,
            currency=currency,
            requested_by=by,
            reason=reason,
            valid_until=until,
        )
        out = repo.request_dict(r)
    emit(out, as_json, None)


@limits_app.command("requests")
def limits_requests(ctx: typer.Context, status: str = "pending", as_json: JsonOpt = False) -> None:
    """Limit change requests (default: pending)."""
    from sqlalchemy import select

    from riskdesk.store.models import LimitRequest

    with session_scope(engine(ctx)) as s:
        rows = [
            repo.request_dict(r)
            for r in s.scalars(
                select(LimitRequest).where(LimitRequest.status == status).order_by(LimitRequest.id)
            )
        ]
    emit(
        {"requests": rows},
        as_json,
        lambda o: _table(
            "limit requests",
            o["requests"],
            [
                "id",
                "customer_id",
                "current_amount",
                "requested_amount",
                "currency",
                "requested_by",
                "needs_risk_manager",
                "reason",
            ],
        ),
    )


def _decide(
    ctx: typer.Context, request_id: int, by: str, reason: str, approve: bool, as_json: bool
) -> None:
    with _guard(as_json), session_scope(engine(ctx)) as s:
        r = repo.decide_request(s, request_id, approver=by, approve=approve, reason=reason)
        out = repo.request_dict(r)
    emit(out, as_json, None)


@limits_app.command("approve")
def limits_approve(
    ctx: typer.Context, request_id: int, by: By, reason: Reason, as_json: JsonOpt = False
) -> None:
    """Approve a limit request (not your own; large increases need a risk_manager)."""
    _decide(ctx, request_id, by, reason, True, as_json)


@limits_app.command("reject")
def limits_reject(
    ctx: typer.Context, request_id: int, by: By, reason: Reason, as_json: JsonOpt = False
) -> None:
    """Reject a limit request."""
    _decide(ctx, request_id, by, reason, False, as_json)


# ----------------------------------------------------------------------------- orders


@orders_app.command("check")
def orders_check(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer code or id.")],
    amount: Annotated[str, typer.Argument(help="Order amount, e.g. 12500.00")],
    currency: Annotated[str, typer.Argument(help="ISO currency, e.g. EUR")],
    ref: Annotated[str | None, typer.Option("--ref", help="Your order reference.")] = None,
    placed_by: Annotated[str | None, typer.Option(help="Who placed the order.")] = None,
    as_of: AsOf = None,
    as_json: JsonOpt = False,
) -> None:
    """Check an order: pass, watch, hold, prepayment_only or stop, with every reason."""
    on = _date(as_of, as_json, "--as-of")
    eng = engine(ctx)
    with _guard(as_json):
        out = repo.run_order_check(
            eng,
            customer,
            amount,
            currency,
            order_ref=ref,
            placed_by=placed_by,
            checked_by="cli",
            on=on,
        )

    def render(o: dict[str, Any]) -> None:
        colour = {"pass": "green", "watch": "yellow", "hold": "magenta"}.get(o["decision"], "red")
        console.print(
            f"[bold {colour}]{o['decision'].upper()}[/] {o['amount']} {o['currency']}"
            f" for {o['customer']} (check {o['check_id']})"
        )
        for r in o["reasons"]:
            console.print(f"  • ({r['decision']}) {r['code']}: {r['message']['en']}", markup=False)

    emit(out, as_json, render)


# ----------------------------------------------------------------------------- holds


@holds_app.command("list")
def holds_list(ctx: typer.Context, status: str = "held", as_json: JsonOpt = False) -> None:
    """Held orders waiting for a decision."""
    with session_scope(engine(ctx)) as s:
        rows = [repo.check_dict(c) for c in repo.list_checks(s, status=status)]
    emit(
        {"holds": rows},
        as_json,
        lambda o: _table(
            "holds",
            [{**r, "reasons": ", ".join(x["code"] for x in r["reasons"])} for r in o["holds"]],
            [
                "id",
                "customer_id",
                "order_ref",
                "amount",
                "currency",
                "placed_by",
                "reasons",
                "created_at",
            ],
        ),
    )


def _hold(
    ctx: typer.Context, check_id: int, by: str, reason: str, release: bool, as_json: bool
) -> None:
    with _guard(as_json), session_scope(engine(ctx)) as s:
        c = repo.decide_hold(s, check_id, actor=by, release=release, reason=reason)
        out = repo.check_dict(c)
    emit(out, as_json, None)


@holds_app.command("release")
def holds_release(
    ctx: typer.Context, check_id: int, by: By, reason: Reason, as_json: JsonOpt = False
) -> None:
    """Release a held order (it then reserves its amount); the seller is notified."""
    _hold(ctx, check_id, by, reason, True, as_json)


@holds_app.command("reject")
def holds_reject(
    ctx: typer.Context, check_id: int, by: By, reason: Reason, as_json: JsonOpt = False
) -> None:
    """Reject a held order; the seller is notified."""
    _hold(ctx, check_id, by, reason, False, as_json)


# ----------------------------------------------------------------------------- insurance


@insurance_app.command("add-policy")
def insurance_add_policy(
    ctx: typer.Context,
    insurer: str,
    policy_no: str,
    currency: str,
    cover_pct: Annotated[str, typer.Argument(help="Cover share, e.g. 0.9")],
    by: By,
    report_overdue_days: int = 60,
    deductible: str = "0",
    valid_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    valid_until: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a credit-insurance policy."""
    with _guard(as_json), session_scope(engine(ctx)) as s:
        p = repo.add_policy(
            s,
            insurer=insurer,
            policy_no=policy_no,
            currency=currency,
            cover_pct=cover_pct,
            actor=by,
            report_overdue_days=report_overdue_days,
            deductible=deductible,
            valid_from=_date(valid_from, as_json),
            valid_until=_date(valid_until, as_json) if valid_until else None,
        )
        out = {"id": p.id, "insurer": p.insurer, "policy_no": p.policy_no}
    emit(out, as_json, None)


@insurance_app.command("buyer-limit")
def insurance_buyer_limit(
    ctx: typer.Context,
    policy_id: int,
    customer: str,
    amount: str,
    by: By,
    valid_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    valid_until: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the insured limit the insurer grants on a buyer."""
    with _guard(as_json), session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        il = repo.set_insured_limit(
            s,
            policy_id=policy_id,
            customer_id=c.id,
            amount=amount,
            actor=by,
            valid_from=_date(valid_from, as_json),
            valid_until=_date(valid_until, as_json) if valid_until else None,
        )
        out = {"id": il.id, "customer_id": c.id, "amount": il.amount, "currency": il.currency}
    emit(out, as_json, None)


@insurance_app.command("collateral")
def insurance_collateral(
    ctx: typer.Context,
    customer: str,
    kind: Annotated[str, typer.Argument(help="guarantee | letter_of_credit")],
    amount: str,
    currency: str,
    by: By,
    issuer: str | None = None,
    valid_until: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a guarantee or letter of credit."""
    with _guard(as_json), session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        col = repo.add_collateral(
            s,
            customer_id=c.id,
            kind=kind,
            amount=amount,
            currency=currency,
            actor=by,
            valid_from=repo.utcnow().date(),
            valid_until=_date(valid_until, as_json) if valid_until else None,
            issuer=issuer,
        )
        out = {"id": col.id, "customer_id": c.id, "kind": kind, "amount": col.amount}
    emit(out, as_json, None)


@insurance_app.command("show")
def insurance_show(ctx: typer.Context, as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Insured and uninsured exposure per insured buyer."""
    on = _date(as_of, as_json, "--as-of")
    with session_scope(engine(ctx)) as s:
        rows = repo.insurance_overview(s, on)
    emit(
        {"as_of": on, "buyers": rows},
        as_json,
        lambda o: _table(
            "insured buyers",
            o["buyers"],
            [
                "customer",
                "insurer",
                "insured_limit",
                "currency",
                "gross",
                "insured",
                "uninsured",
                "valid_until",
            ],
        ),
    )


# ----------------------------------------------------------------------------- tasks


@tasks_app.command("list")
def tasks_list(
    ctx: typer.Context,
    status: str = "open",
    owner: str | None = None,
    customer: str | None = None,
    as_json: JsonOpt = False,
) -> None:
    """Control actions."""
    with session_scope(engine(ctx)) as s:
        cid = _customer(s, customer, as_json).id if customer else None
        rows = [
            repo.action_dict(a)
            for a in repo.list_actions(
                s, status=status if status != "all" else None, owner=owner, customer_id=cid
            )
        ]
    emit(
        {"tasks": rows},
        as_json,
        lambda o: _table(
            "tasks",
            o["tasks"],
            ["id", "kind", "customer_id", "owner", "due_date", "status", "title"],
        ),
    )


@tasks_app.command("add")
def tasks_add(
    ctx: typer.Context,
    kind: str,
    title: str,
    by: By,
    customer: str | None = None,
    owner: str | None = None,
    due: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a task (kinds: reduce_limit, ask_prepayment, renegotiate_terms, stop_deliveries,
    take_insurance, report_to_insurer, escalate, review_limit)."""
    with _guard(as_json), session_scope(engine(ctx)) as s:
        cid = _customer(s, customer, as_json).id if customer else None
        a = repo.add_action(
            s,
            kind=kind,
            title=title,
            created_by=by,
            customer_id=cid,
            owner=owner,
            due_date=_date(due, as_json) if due else None,
        )
        assert a is not None
        out = repo.action_dict(a)
    emit(out, as_json, None)


def _close(
    ctx: typer.Context, task_id: int, by: str, status: str, reason: str | None, as_json: bool
) -> None:
    with _guard(as_json), session_scope(engine(ctx)) as s:
        a = repo.close_action(s, task_id, actor=by, status=status, reason=reason)
        out = repo.action_dict(a)
    emit(out, as_json, None)


@tasks_app.command("done")
def tasks_done(
    ctx: typer.Context, task_id: int, by: By, reason: str | None = None, as_json: JsonOpt = False
) -> None:
    """Mark a task done."""
    _close(ctx, task_id, by, "done", reason, as_json)


@tasks_app.command("cancel")
def tasks_cancel(
    ctx: typer.Context, task_id: int, by: By, reason: str | None = None, as_json: JsonOpt = False
) -> None:
    """Cancel a task."""
    _close(ctx, task_id, by, "cancelled", reason, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(control_app, name="control")
    app.add_typer(limits_app, name="limits")
    app.add_typer(orders_app, name="orders")
    app.add_typer(holds_app, name="holds")
    app.add_typer(insurance_app, name="insurance")
    app.add_typer(tasks_app, name="tasks")
