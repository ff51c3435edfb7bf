from datetime import date
from decimal import Decimal

from sqlalchemy import Engine
from tests.seed import customer_with_invoice

from riskdesk.analytics.frames import load_frames
from riskdesk.store.db import session_scope
from riskdesk.store.models import Payment, PaymentAllocation


def test_frames_load_and_cut_at_the_as_of_date(engine: Engine) -> None:
    with session_scope(engine) as s:
        c, inv = customer_with_invoice(
            s,
            external_id="C1",
            name="A",
            issue=date(2026, 1, 1),
            due=date(2026, 1, 31),
            amount="100.50",
        )
        p = Payment(
            external_id="P1",
            customer_id=c.id,
            payment_date=date(2026, 2, 10),
            amount=Decimal("40"),
            currency="EUR",
        )
        s.add(p)
        s.flush()
        s.add(PaymentAllocation(payment_id=p.id, invoice_id=inv.id, amount=Decimal("40")))
    f = load_frames(engine)
    assert f.invoices["amount"].tolist() == [100.5]
    assert str(f.invoices["due_date"].dtype) == "datetime64[ns]"
    assert len(f.allocations) == 1
    before = f.as_of(date(2026, 2, 1))
    assert len(before.invoices) == 1 and len(before.payments) == 0 and len(before.allocations) == 0
