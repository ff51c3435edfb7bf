"""Control pages show industry, region and country codes by their labels (the code in the
tooltip), customers by name, and a missing key as "not set"."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import update

from riskdesk.control.ladder import Reason
from riskdesk.store import control_repo as repo
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import Customer, OrderCheck


@pytest.fixture
def concentrated(portfolio):  # type: ignore[no-untyped-def]
    """C001 in Germany; a 10 % industry limit (machinery is over it); a held order of C001
    whose reasons include a concentration breach by industry and one by country."""
    eng = make_engine(portfolio.url)
    with session_scope(eng) as s:
        s.execute(update(Customer).where(Customer.id == portfolio.ids["C001"]).values(country="DE"))
        repo.add_concentration_limit(s, dimension="industry", max_share="0.10", actor="rita")
        reasons = [
            Reason(
                "concentration",
                "hold",
                "Concentration by industry 'machinery' would reach 80.0% (limit 10.0%)",
                "按行业“machinery”的集中度将达 80.0%（上限 10.0%）",
                {
                    "dimension": dim,
                    "key": key,
                    "share_after": Decimal("0.8000"),
                    "max_share": Decimal("0.10"),
                },
            ).as_dict()
            for dim, key in (("industry", "machinery"), ("country", "DE"))
        ]
        s.add(
            OrderCheck(
                customer_id=portfolio.ids["C001"],
                order_ref="SO-CONC",
                placed_by="alice",
                amount=Decimal("500.00"),
                currency="EUR",
                decision="hold",
                reasons=repo.jsonable(reasons),
                status="held",
            )
        )
    eng.dispose()
    return portfolio


def test_the_concentration_page_labels_codes_and_keeps_them_in_the_tooltip(
    web, login, concentrated
):
    login("rita")
    en = web.get("/control/concentration?lang=en")
    assert en.status_code == 200, en.text
    dims = en.text.split('id="dimensions"')[1].split("</section>")[0]
    assert '<span title="machinery">Machinery</span>' in dims
    assert '<span title="North">North</span>' in dims
    assert '<span title="DE">Germany</span>' in dims
    assert "(not set)" in dims  # customers without a country
    assert "(none)" not in dims
    acme = concentrated.ids["C001"]
    assert f'<a href="/customers/{acme}" title="C001">Acme Tools GmbH</a>' in dims
    breaches = en.text.split('id="breaches"')[1].split("</section>")[0]
    assert '<span title="machinery">Machinery</span>' in breaches
    assert ">machinery<" not in en.text
    zh = web.get("/control/concentration?lang=zh").text
    assert '<span title="machinery">机械制造</span>' in zh
    assert '<span title="DE">德国</span>' in zh and '<span title="North">北区</span>' in zh


def test_concentration_reasons_of_held_orders_name_the_label(web, login, concentrated):
    login("rita")
    holds = web.get("/control/holds?lang=en").text
    row = holds.split("SO-CONC")[1].split("</tr>")[0]
    assert (
        'Concentration (Industry: <span title="machinery">Machinery</span>) would reach 80.0% '
        "(limit 10.0%)" in row
    )
    assert 'Concentration (Country: <span title="DE">Germany</span>)' in row
    assert "'machinery'" not in row
    page = web.get(f"/control/customers/{concentrated.ids['C001']}?lang=zh").text
    checks = page.split('id="checks"')[1].split("</section>")[0]
    assert (
        '集中度（行业：<span title="machinery">机械制造</span>）将达 80.0%（上限 10.0%）' in checks
    )
