"""ISO 8601 text of dates and UTC times, as ``isoformat`` writes it, for the event intake.

``datetime.isoformat`` formats each field through C ``printf`` and the UTC offset apart, and
the intake writes two such times per event (the event's canonical time, the stored timestamp)
and a date or two. Here the fields are joined from a table of two-digit strings, and a date
seen before (a process writes the same few hundred days over and over) is a dictionary lookup:
4.0 % fewer instructions per intake event (``bench/intake_instructions.py``, docs/benchmarks.md).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

_2D = tuple(f"{i:02d}" for i in range(100))
_DAYS: dict[date, str] = {}
_DAYS_MAX = 50_000


def iso_date(d: date) -> str:
    """``d.isoformat()`` (``YYYY-MM-DD``) of a ``date`` (not a ``datetime``), remembered."""
    s = _DAYS.get(d)
    if s is None:
        s = d.isoformat()
        if len(_DAYS) < _DAYS_MAX:
            _DAYS[d] = s
    return s


def _year(y: int) -> str:
    return str(y) if y >= 1000 else f"{y:04d}"


def iso_z(t: datetime) -> str:
    """``t.isoformat()`` with ``Z`` for the offset of a UTC time (``2026-01-31T10:00:00Z``, with
    ``.ffffff`` only when there are microseconds); a time in another zone, or without one, as
    ``isoformat`` writes it."""
    if t.tzinfo is not UTC:
        return t.isoformat().replace("+00:00", "Z")
    d = _2D
    s = f"{_year(t.year)}-{d[t.month]}-{d[t.day]}T{d[t.hour]}:{d[t.minute]}:{d[t.second]}"
    us = t.microsecond
    return f"{s}.{str(us).zfill(6)}Z" if us else s + "Z"


def iso_utc_space(t: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` of ``t`` in UTC: ``t.astimezone(UTC).isoformat(" ",
    "microseconds")`` without the offset (a naive time is local time, as ``astimezone`` takes
    it), the text SQLAlchemy stores for a ``DATETIME`` on SQLite."""
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    d = _2D
    return (
        f"{_year(t.year)}-{d[t.month]}-{d[t.day]} "
        f"{d[t.hour]}:{d[t.minute]}:{d[t.second]}.{str(t.microsecond).zfill(6)}"
    )
