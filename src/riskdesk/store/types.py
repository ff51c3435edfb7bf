"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, Numeric, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

CENT = Decimal("0.01")
MAX_ID = 2**31 - 1
"""Ids are INTEGER columns (32-bit on PostgreSQL): larger ids cannot exist."""


class Amount(TypeDecorator[Decimal]):
    """A money amount: NUMERIC(18, 2), always returned as an exact ``Decimal``.

    SQLite keeps NUMERIC with float affinity; amounts below 10^13 with two decimals survive
    the round trip exactly once quantized, which this type does on the way out.
    """

    impl = Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return (
            Decimal(value).quantize(CENT)
            if dialect.name != "sqlite"
            else str(Decimal(value).quantize(CENT))
        )

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(CENT)


class Rate(TypeDecorator[Decimal]):
    """A rate or ratio with 8 decimals (FX rates, shares)."""

    impl = Numeric(20, 8, asdecimal=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return Decimal(value) if dialect.name != "sqlite" else str(Decimal(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal("0.00000001")).normalize()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError("UTCDateTime needs a datetime")
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: give a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSON on SQLite, JSONB on PostgreSQL."""


class JSONDocType(TypeDecorator[Any]):
    """A JSON document kept as text: for documents rewritten often and only ever read whole
    (nothing queries into them). On PostgreSQL a ``text`` column, written and read with orjson:
    ``json`` made the server parse every written document to check it,
    ``jsonb`` into its binary form as well, and psycopg read ``json`` back with Python's
    slower ``json``. SQLite stores JSON as text anyway: SQLAlchemy's ``JSON`` there."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(JSON())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "sqlite" or value is None:
            return value
        return orjson.dumps(value).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "sqlite" or value is None:
            return value
        return orjson.loads(value)


JSONDoc = JSONDocType()
"""See :class:`JSONDocType`."""


def utcnow() -> datetime:
    return datetime.now(UTC)
