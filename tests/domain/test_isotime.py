"""The intake's ISO 8601 writers give exactly what ``isoformat`` gives."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from riskdesk.domain.isotime import iso_date, iso_utc_space, iso_z

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]
)


@given(st.dates())
def test_iso_date_is_isoformat_also_when_remembered(d: date) -> None:
    assert iso_date(d) == d.isoformat()
    assert iso_date(d) == d.isoformat()  # the second time from the cache


@given(st.datetimes(timezones=ZONES))
def test_iso_z_is_isoformat_with_z_for_utc(t: datetime) -> None:
    assert iso_z(t) == t.isoformat().replace("+00:00", "Z")


@given(st.datetimes(timezones=ZONES))
def test_iso_utc_space_is_the_utc_isoformat_with_microseconds(t: datetime) -> None:
    try:
        want = t.astimezone(UTC).isoformat(" ", "microseconds")[:26]
    except OverflowError:  # (a time within hours of year 1 or 9999 has no UTC form)
        return
    assert iso_utc_space(t) == want


def test_the_edges_of_the_forms() -> None:
    assert iso_z(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05Z"
    assert iso_z(datetime(2026, 12, 1, 0, 0, 0, 7, tzinfo=UTC)) == "2026-12-01T00:00:00.000007Z"
    assert iso_utc_space(datetime(2026, 12, 1, 8, tzinfo=timezone(timedelta(hours=8)))) == (
        "2026-12-01 00:00:00.000000"
    )
    assert iso_date(date(5, 6, 7)) == "0005-06-07"
