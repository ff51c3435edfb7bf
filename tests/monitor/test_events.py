"""Event validation: the one-pass check accepts exactly what the envelope + payload models
accept, with the same values, and every refusal keeps its reason."""

from __future__ import annotations

import copy
import random
from datetime import UTC
from typing import Any

import pytest
from pydantic import ValidationError

from riskdesk.monitor import events as ev_mod
from riskdesk.monitor.events import EventError, parse_event

BASE: list[dict[str, Any]] = [
    {
        "event_id": "e1",
        "type": "order.placed",
        "event_time": "2026-01-05T10:00:00Z",
        "customer_id": "C1",
        "payload": {
            "order_id": "O1",
            "order_date": "2026-01-05",
            "amount": "1200.50",
            "currency": "eur",
        },
    },
    {
        "event_id": "e2",
        "type": "invoice.issued",
        "event_time": "2026-01-05T10:00:00+02:00",
        "customer_id": "C1",
        "payload": {
            "invoice_id": "I1",
            "issue_date": "2026-01-05",
            "due_date": "2026-02-04",
            "amount": 300,
            "currency": "USD",
            "order_id": "O1",
        },
    },
    {
        "event_id": "e3",
        "type": "payment.received",
        "event_time": "2026-02-01T09:30:00Z",
        "customer_id": "C1",
        "payload": {
            "payment_id": "P1",
            "payment_date": "2026-02-01",
            "amount": "300",
            "currency": "USD",
            "allocations": [{"invoice_id": "I1", "amount": "300.00"}],
        },
    },
    {
        "event_id": "e4",
        "type": "credit_note.issued",
        "event_time": "2026-02-01T09:30:00Z",
        "customer_id": "C1",
        "payload": {
            "credit_note_id": "N1",
            "invoice_id": "I1",
            "issue_date": "2026-02-01",
            "amount": "10",
            "currency": "USD",
        },
    },
    {
        "event_id": "e5",
        "type": "invoice.disputed",
        "event_time": "2026-02-01T09:30:00Z",
        "customer_id": "C1",
        "payload": {"invoice_id": "I1", "disputed": False, "reason": "late"},
    },
    {
        "event_id": "e6",
        "type": "bureau_score.changed",
        "event_time": "2026-02-01T09:30:00.250Z",
        "customer_id": "C1",
        "payload": {"score": 612.5, "source": "x"},
    },
    {
        "event_id": "e7",
        "type": "customer.changed",
        "event_time": "2026-02-01T09:30:00Z",
        "customer_id": "C1",
        "payload": {},
    },
    {
        "event_id": "e8",
        "type": "order.changed",
        "event_time": "2026-02-01T09:30:00Z",
        "customer_id": "C1",
        "payload": {"order_id": "O1", "amount": "99"},
    },
    {
        "event_id": "e9",
        "type": "contract.breached",
        "event_time": "2026-02-01T09:30:00Z",
        "customer_id": "C1",
        "payload": {"clause": "minimum_volume"},
    },
    {
        "event_id": "e10",
        "type": "market_index.updated",
        "event_time": "2026-02-01T09:30:00Z",
        "customer_id": "C1",
        "payload": {"code": "PMI", "value": -1.5, "period_date": "2026-01-31"},
    },
    {
        "event_id": "e11",
        "type": "order.cancelled",
        "event_time": "2026-02-01T09:30:00Z",
        "customer_id": "C1",
        "payload": {"order_id": "O1"},
    },
]
ODD = (
    None,
    True,
    0,
    -1,
    7,
    5.5,
    float("nan"),
    "",
    " ",
    "x" * 65,
    "1,000.00",
    " 12.5 ",
    "-3",
    "1e3",
    "Infinity",
    "eu",
    "EURO",
    "€€€",
    "2026-01-01",
    "2026-01-01T00:00:00",
    "2026-13-01T00:00:00Z",
    "2026-01-01T00:00:00+05:30",
    "order.placed",
    "payment.received",
    [],
    [{"invoice_id": "I", "amount": "1"}],
    [{"invoice_id": "I", "amount": "-1"}],
    {},
    {"a": 1},
    b"EUR",
)


def _two_step(raw: Any) -> ev_mod.Event:
    """The envelope model, then the payload model of its type (the reference)."""
    if not isinstance(raw, dict):
        raise EventError("an event must be a JSON object")
    try:
        env = ev_mod.Envelope.model_validate(raw)
    except ValidationError as exc:
        raise EventError(ev_mod._reason(exc)) from None
    try:
        payload = ev_mod.PAYLOADS[env.type].model_validate(env.payload)
    except ValidationError as exc:
        raise EventError(ev_mod._reason(exc, "payload.")) from None
    return ev_mod.Event(env.event_id, env.type, env.event_time, env.customer_id, payload, raw)


def _outcome(fn: Any, raw: Any) -> tuple[Any, ...]:
    try:
        ev = fn(raw)
    except EventError as exc:
        return ("rejected", str(exc))
    tz = ev.event_time.tzinfo
    return ("ok", ev.to_dict(), type(ev.payload), ev.payload, ev.event_time, tz, ev.raw is raw)


def _mutate(rng: random.Random, raw: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for _ in range(rng.randint(1, 3)):
        target = raw
        if isinstance(raw.get("payload"), dict) and rng.random() < 0.6:
            target = raw["payload"]
            if isinstance(target.get("allocations"), list) and target["allocations"]:
                if rng.random() < 0.3 and isinstance(target["allocations"][0], dict):
                    target = target["allocations"][0]
        keys = list(target) or ["x"]
        r = rng.random()
        if r < 0.15:
            target.pop(rng.choice(keys), None)
        elif r < 0.25:
            target[rng.choice(("extra", "sql", "payload", "type"))] = rng.choice(ODD)
        else:
            target[rng.choice(keys)] = rng.choice(ODD)
    return raw


def test_the_common_events_take_the_one_pass_check() -> None:
    for raw in BASE:
        ev = parse_event(raw)
        assert _outcome(parse_event, raw) == _outcome(_two_step, raw)
        assert ev.event_time.tzinfo is UTC
    # (the one-pass validator alone accepts every base event: no silent fallback)
    for raw in BASE:
        ev_mod._ONE_PASS.validate_python(raw)


@pytest.mark.parametrize("seed", range(6))
def test_one_pass_validation_accepts_and_refuses_like_the_two_models(seed: int) -> None:
    rng = random.Random(seed)
    accepted = rejected = 0
    for _ in range(400):
        raw = _mutate(rng, rng.choice(BASE))
        got, want = _outcome(parse_event, raw), _outcome(_two_step, raw)
        assert got == want, raw
        accepted += got[0] == "ok"
        rejected += got[0] == "rejected"
    assert accepted > 20 and rejected > 100


@pytest.mark.parametrize(
    "raw",
    [
        [1, 2],
        "event",
        {**BASE[0], "payload": None},
        {k: v for k, v in BASE[6].items() if k != "payload"},  # payload defaults to {}
        {**BASE[0], "type": "invoice.overdue"},
        {**BASE[0], "type": None},
        {**BASE[0], "payload": ev_mod.OrderPlaced.model_validate(BASE[0]["payload"])},  # not JSON
    ],
)
def test_odd_envelopes_give_the_reference_outcome(raw: Any) -> None:
    assert _outcome(parse_event, raw) == _outcome(_two_step, raw)


def _decimal_reading(fn: Any, v: Any) -> tuple[str, str]:
    try:
        d = fn(v)
    except ValueError as exc:
        return ("refused", str(exc))
    return ("ok", f"{d!s}")


@pytest.mark.parametrize("seed", range(3))
def test_amounts_read_like_to_decimal(seed: int) -> None:
    """``_amount``'s shortcut for plain strings gives ``to_decimal``'s value (same digits and
    exponent) or its refusal, for odd strings too."""
    from riskdesk.domain.money import MAX_DOCUMENT_AMOUNT, to_decimal

    def reference(v: Any) -> Any:
        d = to_decimal(v)
        if d < 0:
            raise ValueError("an amount cannot be negative")
        if d >= MAX_DOCUMENT_AMOUNT:
            raise ValueError(ev_mod._TOO_LARGE)
        return d

    rng = random.Random(seed)
    parts = ("1", "0", "9", ".", ",", "-", "+", "e", "E", "_", " ", "\t", "\xa0", "٣", "x")
    odd = ["", " ", "NaN", "sNaN", "-inf", "Infinity", "1e999999", "-0", "0e-9", "12\x00"]
    odd += ["1e400", "1e16", "9999999999999999.99", "10000000000000000", "1E+15"]
    values = odd + ["".join(rng.choices(parts, k=rng.randint(1, 8))) for _ in range(3000)]
    values += [f"{rng.randint(0, 10**9)}.{rng.randint(0, 99):02d}" for _ in range(500)]
    ok = 0
    for v in values:
        got = _decimal_reading(ev_mod._amount, v)
        assert got == _decimal_reading(reference, v), v
        ok += got[0] == "ok"
    assert 500 < ok < len(values) - 500


def test_an_amount_beyond_any_document_is_refused_with_the_reason() -> None:
    """An amount of 10^16 or more is refused (the database holds documents as NUMERIC(18,
    2)); far larger ones were taken, became an infinite float and, stored as JSON null in
    the customer's book, broke every later batch of that customer."""

    def invoice(amount: Any) -> dict[str, Any]:
        return {
            "event_id": "e1",
            "type": "invoice.issued",
            "event_time": "2026-01-05T10:00:00Z",
            "customer_id": "K",
            "payload": {
                "invoice_id": "I1",
                "issue_date": "2026-01-05",
                "due_date": "2026-02-04",
                "amount": amount,
                "currency": "EUR",
            },
        }

    assert parse_event(invoice("9999999999999999.99")).payload.amount < 10**16
    for too_big in ("1e400", "10000000000000000", 10**17):
        with pytest.raises(EventError, match=r"payload.amount: .*must be below .* \(10\^16\)"):
            parse_event(invoice(too_big))


def test_the_canonical_payload_is_the_models_json_dump() -> None:
    rng = random.Random(9)
    seen = 0
    for raw in [*BASE, *(_mutate(rng, rng.choice(BASE)) for _ in range(600))]:
        try:
            ev = parse_event(raw)
        except EventError:
            continue
        want = ev.payload.model_dump(mode="json", exclude_none=True)
        assert ev.to_dict()["payload"] == want
        seen += 1
    assert seen > 50
