"""``riskdesk expert …``, ``riskdesk ahp …`` and ``riskdesk rating …``."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from riskdesk.assess import ahp
from riskdesk.assess.delphi import DelphiError
from riskdesk.assess.expert import BUILTIN_SOURCES, AssessmentError, Judgement
from riskdesk.assess.rating import RatingError
from riskdesk.assess.scale import grade_info
from riskdesk.commands._common import JsonOpt, console, emit, engine, fail
from riskdesk.store import ratings as repo
from riskdesk.store.customers import find_customer
from riskdesk.store.db import session_scope
from riskdesk.store.models import Customer
from riskdesk.store.users import get_user

expert_app = typer.Typer(
    help="Expert assessments: likelihood x impact per risk source.", no_args_is_help=True
)
ahp_app = typer.Typer(help="AHP weights from a pairwise comparison matrix.", no_args_is_help=True)
rating_app = typer.Typer(help="Ratings: propose, approve, show, history.", no_args_is_help=True)

SourceOpt = Annotated[
    str,
    typer.Option(
        "--source", "-s", help=f"Risk source code ({', '.join(BUILTIN_SOURCES)} or your own)."
    ),
]
Level = Annotated[int, typer.Option(min=1, max=5)]


def _customer(s: Session, key: str, as_json: bool) -> Customer:
    c = find_customer(s, key)
    if c is None:
        raise fail(f"no customer {key!r}", 1, as_json)
    return c


def _date(value: str | None, name: str, as_json: bool) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{name} must be a date YYYY-MM-DD, got {value!r}", 1, as_json) from None


# ----------------------------------------------------------------- expert


@expert_app.command("add")
def expert_add(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer code or id.")],
    source: SourceOpt,
    likelihood: Annotated[
        int, typer.Option("--likelihood", "-l", help="1 rare … 5 almost certain.")
    ],
    impact: Annotated[int, typer.Option("--impact", "-i", help="1 negligible … 5 severe.")],
    assessor: Annotated[str, typer.Option("--assessor", "-a", help="Who assesses.")],
    comment: Annotated[str | None, typer.Option(help="Why.")] = None,
    evidence: Annotated[list[str] | None, typer.Option(help="Evidence link (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record one assessor's likelihood x impact judgement of a risk source."""
    try:
        with session_scope(engine(ctx)) as s:
            c = _customer(s, customer, as_json)
            row = repo.add_assessment(
                s,
                c.id,
                source=source,
                likelihood=likelihood,
                impact=impact,
                assessor=assessor,
                comment=comment,
                evidence=evidence or [],
            )
            out = repo.assessment_dict(row)
    except AssessmentError as exc:
        raise fail(str(exc), 1, as_json) from None
    emit(
        out,
        as_json,
        lambda o: console.print(
            f"[green]assessment {o['id']}[/] {o['source']}: likelihood {o['likelihood']} x "
            f"impact {o['impact']} = {o['score']}"
        ),
    )


def _render_matrix(o: dict[str, Any]) -> None:
    t = Table(title=o.get("title", "risk matrix (rows: impact, columns: likelihood)"))
    t.add_column("impact \\ likelihood")
    for li in range(1, 6):
        t.add_column(str(li), justify="right")
    for ii in range(5, 0, -1):
        t.add_row(str(ii), *(str(v or "·") for v in o["grid"][ii - 1]))
    console.print(t)
    if o.get("consensus"):
        c = Table(title="consensus per source")
        for col in ("source", "n", "likelihood", "impact", "score", "zone", "spread"):
            c.add_column(col)
        for r in o["consensus"]:
            c.add_row(
                *(
                    str(r[k])
                    for k in ("source", "n", "likelihood", "impact", "score", "zone", "spread")
                )
            )
        console.print(c)
        console.print(f"qualitative notches: {o['notches']:+d}")


@expert_app.command("matrix")
def expert_matrix(
    ctx: typer.Context,
    customer: Annotated[
        str | None, typer.Argument(help="Customer code or id; none = portfolio.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The 5x5 risk matrix of a customer (with consensus) or of the whole portfolio."""
    with session_scope(engine(ctx)) as s:
        if customer is None:
            out = repo.portfolio_matrix(s)
            out["title"] = "portfolio risk matrix (rows: impact, columns: likelihood)"
        else:
            c = _customer(s, customer, as_json)
            out = repo.customer_matrix(s, c.id)
    emit(out, as_json, _render_matrix)


@expert_app.command("list")
def expert_list(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer code or id.")],
    all_: Annotated[bool, typer.Option("--all", help="Include replaced judgements.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A customer's expert assessments."""
    with session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        rows = [repo.assessment_dict(a) for a in repo.list_assessments(s, c.id, not all_)]

    def render(o: dict[str, Any]) -> None:
        t = Table(title="expert assessments")
        for col in ("id", "source", "likelihood", "impact", "assessor", "comment", "active"):
            t.add_column(col)
        for r in o["assessments"]:
            t.add_row(
                *(
                    str(r[k] if r[k] is not None else "")
                    for k in (
                        "id",
                        "source",
                        "likelihood",
                        "impact",
                        "assessor",
                        "comment",
                        "active",
                    )
                )
            )
        console.print(t)

    emit({"assessments": rows}, as_json, render)


@expert_app.command("delphi-start")
def delphi_start(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer code or id.")],
    source: SourceOpt,
    by: Annotated[str, typer.Option("--by", help="Who runs the study.")],
    threshold: Annotated[float, typer.Option(help="Stop when the spread (IQR) is below.")] = 1.0,
    max_rounds: Annotated[int, typer.Option(min=1, max=10)] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Open a Delphi study on one risk source of a customer."""
    try:
        with session_scope(engine(ctx)) as s:
            c = _customer(s, customer, as_json)
            r = repo.delphi_start(
                s, c.id, source, actor=by, threshold=threshold, max_rounds=max_rounds
            )
            out = {"study": r.study, "round": r.round_no, "state": r.state}
    except DelphiError as exc:
        raise fail(str(exc), 1, as_json) from None
    emit(out, as_json, lambda o: console.print(f"Delphi study [bold]{o['study']}[/] round 1 open"))


@expert_app.command("delphi-answer")
def delphi_answer(
    ctx: typer.Context,
    study: Annotated[str, typer.Argument(help="Study id from delphi-start.")],
    likelihood: Annotated[int, typer.Option("--likelihood", "-l")],
    impact: Annotated[int, typer.Option("--impact", "-i")],
    assessor: Annotated[str, typer.Option("--assessor", "-a")],
    comment: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer the open round of a Delphi study (replaces your earlier answer)."""
    try:
        with session_scope(engine(ctx)) as s:
            rows = repo.delphi_rounds(s, study)
            if not rows:
                raise fail(f"no Delphi study {study!r}", 1, as_json)
            prev = rows[-2].summary if len(rows) > 1 else None
            r = repo.delphi_answer(
                s, study, Judgement(rows[0].source, likelihood, impact, assessor, comment)
            )
            out = {
                "study": study,
                "round": r.round_no,
                "answers": len(r.answers),
                "previous_round": prev,
            }
    except (DelphiError, AssessmentError) as exc:
        raise fail(str(exc), 1, as_json) from None
    emit(out, as_json, None)


@expert_app.command("delphi-close")
def delphi_close(
    ctx: typer.Context,
    study: Annotated[str, typer.Argument(help="Study id.")],
    by: Annotated[str, typer.Option("--by")],
    as_json: JsonOpt = False,
) -> None:
    """Close the open round: converged, out of rounds, or the next round opens."""
    try:
        with session_scope(engine(ctx)) as s:
            st = repo.delphi_close(s, study, actor=by)
            out = {
                "study": study,
                "status": st.status,
                "round": st.round_no,
                "summary": st.history[-1].as_dict(),
            }
    except LookupError as exc:
        raise fail(str(exc), 1, as_json) from None
    except DelphiError as exc:
        raise fail(str(exc), 1, as_json) from None
    emit(out, as_json, None)


# ----------------------------------------------------------------- AHP


@ahp_app.command("weights")
def ahp_weights(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help='JSON: {"criteria": [...], "matrix": [[...]]}.')],
    save: Annotated[str | None, typer.Option(help="Store the weights under this name.")] = None,
    by: Annotated[str, typer.Option("--by", help="Who (when saving).")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Weights and consistency ratio of a pairwise comparison matrix (exit 2 if CR ≥ 0.1)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"cannot read {file}: {exc}", 1, as_json) from None
    try:
        crit, matrix = ahp.parse_matrix(data)
        res = ahp.weights(matrix, crit)
    except ahp.AhpError as exc:
        raise fail(str(exc), 1, as_json) from None
    out = res.as_dict()
    if not res.consistent:
        raise fail(str(ahp.InconsistentMatrix(res)), 2, as_json, **out)
    if save:
        with session_scope(engine(ctx)) as s:
            row = repo.save_weight_set(s, save, list(res.criteria), matrix, res, actor=by)
            out["saved_id"] = row.id

    def render(o: dict[str, Any]) -> None:
        t = Table(
            title=f"AHP weights (λmax {o['lambda_max']:.4f}, CI {o['ci']:.4f}, CR {o['cr']:.4f})"
        )
        t.add_column("criterion")
        t.add_column("weight", justify="right")
        for k, v in o["weights"].items():
            t.add_row(k, f"{v:.4f}")
        console.print(t)

    emit(out, as_json, render)


# ----------------------------------------------------------------- rating


def _render_rating(o: dict[str, Any]) -> None:
    console.print(
        f"rating [bold]{o['id']}[/] customer {o['customer_id']} [bold]{o['status']}[/]: grade "
        f"{o['final_grade']} ({o['final_label']}), PD {o['final_pd']:.4%}, base {o['base_grade']}"
        f" from {o['base_source']}, notches {o['qualitative_notches']:+d} qualitative "
        f"{o['override_notches']:+d} override, valid until {o['valid_until']}"
    )
    for n in o.get("inputs", {}).get("notes", []):
        console.print(f"[yellow]{n}[/]")


@rating_app.command("propose")
def rating_propose(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer code or id.")],
    by: Annotated[str, typer.Option("--by", help="Who proposes.")],
    grade: Annotated[
        int | None,
        typer.Option(
            min=1, max=10, help="Manual base grade (default: model, else expert scorecard)."
        ),
    ] = None,
    override: Annotated[int, typer.Option(min=-9, max=9, help="Override notches (+ = worse).")] = 0,
    reason: Annotated[str | None, typer.Option(help="Why (required with --override).")] = None,
    expires: Annotated[str | None, typer.Option(help="Override expiry YYYY-MM-DD.")] = None,
    on: Annotated[str | None, typer.Option(help="As of YYYY-MM-DD (default today).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose a rating: base grade + expert notches + optional override."""
    from riskdesk.analytics.steps.rating import base_for

    as_of = _date(on, "--on", as_json) or date.today()
    exp = _date(expires, "--expires", as_json)
    eng = engine(ctx)
    with session_scope(eng) as s:
        cid = _customer(s, customer, as_json).id
    if grade is not None:
        base: repo.BaseGrade | None = repo.BaseGrade("manual", grade, None, None, {"by": by})
    else:
        base = base_for(eng, cid, as_of)
    if base is None:
        raise fail("no base grade: give --grade", 1, as_json)
    try:
        with session_scope(eng) as s:
            r = repo.propose_rating(
                s,
                cid,
                base=base,
                proposed_by=by,
                on=as_of,
                override_notches=override,
                override_reason=reason,
                override_expires=exp,
            )
            out = repo.rating_dict(r)
    except RatingError as exc:
        raise fail(str(exc), 1, as_json) from None
    emit(out, as_json, _render_rating)


def _decide(
    ctx: typer.Context, rating_id: int, by: str, reason: str | None, approve: bool, as_json: bool
) -> None:
    try:
        with session_scope(engine(ctx)) as s:
            user = get_user(s, by)
            if user is None or not user.active:
                raise fail(f"no active user {by!r} (approvers must be riskdesk users)", 1, as_json)
            if approve:
                r = repo.approve_rating(
                    s, rating_id, approver=by, approver_role=user.role, reason=reason
                )
            else:
                r = repo.reject_rating(
                    s, rating_id, approver=by, approver_role=user.role, reason=reason or ""
                )
            out = repo.rating_dict(r)
    except (RatingError, LookupError) as exc:
        raise fail(str(exc).strip("'\""), 1, as_json) from None
    emit(out, as_json, _render_rating)


@rating_app.command("approve")
def rating_approve(
    ctx: typer.Context,
    rating_id: Annotated[int, typer.Argument(help="Rating id.")],
    by: Annotated[str, typer.Option("--by", help="Approver (a riskdesk user).")],
    reason: Annotated[str | None, typer.Option(help="Decision note.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a proposed rating (not your own; beyond ±2 notches: a risk manager)."""
    _decide(ctx, rating_id, by, reason, True, as_json)


@rating_app.command("reject")
def rating_reject(
    ctx: typer.Context,
    rating_id: Annotated[int, typer.Argument(help="Rating id.")],
    by: Annotated[str, typer.Option("--by", help="Reviewer (a riskdesk user).")],
    reason: Annotated[str, typer.Option(help="Why.")],
    as_json: JsonOpt = False,
) -> None:
    """Reject a proposed rating."""
    _decide(ctx, rating_id, by, reason, False, as_json)


@rating_app.command("show")
def rating_show(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer code or id.")],
    on: Annotated[str | None, typer.Option(help="As of YYYY-MM-DD (default today).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The customer's rating in force and any pending proposal."""
    as_of = _date(on, "--on", as_json)
    with session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        cur = repo.current_rating(s, c.id, as_of)
        pending = [
            repo.rating_dict(r) for r in repo.rating_history(s, c.id) if r.status == "proposed"
        ]
        out = {
            "customer_id": c.id,
            "external_id": c.external_id,
            "current": cur.as_dict() if cur else None,
            "pending": pending,
        }

    def render(o: dict[str, Any]) -> None:
        cur = o["current"]
        if cur is None:
            console.print("no approved rating")
        else:
            g = grade_info(cur["grade"])
            console.print(
                f"grade [bold]{cur['grade']} {g.label}[/] ({g.name_en}), PD "
                f"{cur['pd']:.4%}, valid until {cur['valid_until']} [{cur['status']}]"
            )
        for p in o["pending"]:
            console.print(
                f"pending proposal {p['id']}: grade {p['final_grade']} by {p['proposed_by']}"
            )

    emit(out, as_json, render)


@rating_app.command("history")
def rating_history(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer code or id.")],
    as_json: JsonOpt = False,
) -> None:
    """Every rating decision of a customer, newest first."""
    with session_scope(engine(ctx)) as s:
        c = _customer(s, customer, as_json)
        rows = [repo.rating_dict(r) for r in repo.rating_history(s, c.id)]

    def render(o: dict[str, Any]) -> None:
        t = Table(title="rating history")
        for col in (
            "id",
            "status",
            "base",
            "notches",
            "grade",
            "proposed_by",
            "approved_by",
            "valid_until",
        ):
            t.add_column(col)
        for r in o["ratings"]:
            t.add_row(
                str(r["id"]),
                r["status"],
                f"{r['base_grade']} {r['base_source']}",
                f"{r['qualitative_notches']:+d}/{r['override_notches']:+d}",
                str(r["final_grade"]),
                r["proposed_by"],
                r["approved_by"] or "",
                r["valid_until"],
            )
        console.print(t)

    emit({"customer_id": c.id, "ratings": rows}, as_json, render)


def register(app: typer.Typer) -> None:
    app.add_typer(expert_app, name="expert")
    app.add_typer(ahp_app, name="ahp")
    app.add_typer(rating_app, name="rating")
