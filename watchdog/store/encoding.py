"""The form in which canonical values are written by the bulk path, per store dialect.

The poller writes millions of rows through the driver directly (`BulkUpsert`), so the
validator produces values already in the form the column types would have produced:
SQLite keeps times as naive-UTC ISO text and decimals as floats; PostgreSQL takes
aware datetimes and decimals as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


def _sqlite_timestamp(utc: datetime) -> str:
    # Exactly what SQLAlchemy's SQLite DateTime writes (microseconds always present),
    # so stored text compares correctly with values SQLAlchemy binds in queries.
    return utc.isoformat(sep=" ", timespec="microseconds")


def _sqlite_read_timestamp(text: Any) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _aware(utc: datetime) -> datetime:
    return utc.replace(tzinfo=UTC)


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class StoreEncoding:
    """How to write a timestamp (given as naive UTC) and a decimal, and read a time back."""

    name: str
    timestamp: Callable[[datetime], Any]
    decimal: Callable[[Decimal], Any]
    read_timestamp: Callable[[Any], datetime]


# Aware UTC datetimes and Decimals: what PostgreSQL takes, and the canonical form.
CANONICAL = StoreEncoding("canonical", _aware, _same, _same)
SQLITE = StoreEncoding("sqlite", _sqlite_timestamp, float, _sqlite_read_timestamp)


def encoding_for(dialect: str) -> StoreEncoding:
    return SQLITE if dialect == "sqlite" else CANONICAL
