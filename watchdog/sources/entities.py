"""The canonical entities a source query must return, and how values are converted.

A value that breaks the contract raises `BadValue`, whose message is the quarantine
reason; `watchdog.sources.validation` applies these per row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

ColumnKind = Literal["text", "int", "timestamp", "decimal", "choice"]

PAUSE_KINDS = (
    "extension",
    "hearing",
    "expert_review",
    "testing",
    "site_survey",
    "supplement",
    "other",
)
INSPECTION_KINDS = ("random", "routine", "complaint", "followup", "joint")
LIMIT_UNITS = ("W", "N")
EARLIEST_YEAR = 1970
LATEST_YEAR = 2100


@dataclass(frozen=True)
class Field:
    """One canonical column: its type, whether it may be null, and its limits."""

    name: str
    kind: ColumnKind
    required: bool = False
    choices: tuple[str, ...] = ()
    default: str | None = None
    what: str = ""  # how a bad value is described: "limit", "amount" …


@dataclass(frozen=True)
class Entity:
    """A canonical entity: the key column and the fields after it."""

    name: str
    key: str
    fields: tuple[Field, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return (self.key, *(f.name for f in self.fields), "updated_at")


def _text(name: str, *, required: bool = False) -> Field:
    return Field(name, "text", required)


def _time(name: str, *, required: bool = False) -> Field:
    return Field(name, "timestamp", required)


ENTITIES: dict[str, Entity] = {
    entity.name: entity
    for entity in (
        Entity(
            "cases",
            "case_id",
            (
                _text("matter_code"),
                _text("matter_name"),
                _text("dept_code", required=True),
                _text("dept_name"),
                _text("applicant_id"),
                _time("applied_at"),
                _time("accepted_at"),
                Field("promised_limit", "int", required=True, what="limit"),
                Field("statutory_limit", "int", what="limit"),
                Field("limit_unit", "choice", choices=LIMIT_UNITS, default="W", what="limit unit"),
                _time("completed_at"),
                _text("result"),
            ),
        ),
        Entity(
            "steps",
            "step_id",
            (
                _text("case_id", required=True),
                _text("step_code", required=True),
                _text("step_name"),
                _text("handler_id"),
                _time("finished_at"),
                _text("result"),
            ),
        ),
        Entity(
            "pauses",
            "pause_id",
            (
                _text("case_id", required=True),
                Field("kind", "choice", required=True, choices=PAUSE_KINDS, what="pause kind"),
                _time("started_at", required=True),
                _time("ended_at"),
                Field("granted_days", "int", what="granted days"),
            ),
        ),
        Entity(
            "fees",
            "fee_id",
            (
                _text("case_id", required=True),
                _text("fee_code", required=True),
                _text("fee_name"),
                Field("amount", "decimal", required=True, what="amount"),
                _time("charged_at", required=True),
            ),
        ),
        Entity(
            "inspections",
            "inspection_id",
            (
                _text("target_id", required=True),
                _text("target_name"),
                _text("dept_code", required=True),
                _time("inspected_at", required=True),
                Field(
                    "kind",
                    "choice",
                    required=True,
                    choices=INSPECTION_KINDS,
                    what="inspection kind",
                ),
                _text("joint_group"),
            ),
        ),
        Entity(
            "reviews",
            "review_id",
            (
                _text("case_id"),
                _text("dept_code"),
                _time("received_at", required=True),
                _text("rating"),
                _time("replied_at"),
            ),
        ),
    )
}


class BadValue(ValueError):
    """A value that breaks the contract; the message is the quarantine reason."""


def parse_timestamp(value: Any, zone: ZoneInfo) -> datetime:
    """A source timestamp as an aware UTC datetime; naive values are in the source's zone.

    Accepts datetime and date objects, ISO 8601 text ("2026-03-02 09:30:00",
    "2026-03-02T09:30:00+08:00", "2026-03-02") and the compact forms common in Chinese
    business systems ("20260302093000", "20260302"). Placeholder dates such as
    0001-01-01 or 9999-12-31, common in business systems, are refused as implausible.
    """
    return converter_for(zone)(value).replace(tzinfo=UTC)


@cache
def converter_for(zone: ZoneInfo) -> UtcConverter:
    """One converter per zone: building one probes the zone's offsets over a century."""
    return UtcConverter(zone)


class UtcConverter:
    """Turns source timestamps into naive UTC datetimes, fast for fixed-offset zones.

    Most sources are in a zone without daylight saving (Asia/Shanghai since 1992); for
    those a subtraction replaces a zone lookup per value, which matters at millions of
    rows. Other zones, and older dates, take the exact path.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        offsets = {zone.utcoffset(datetime(y, m, 1)) for y in range(1992, 2100) for m in (1, 7)}
        self.fixed: timedelta | None = offsets.pop() if len(offsets) == 1 else None

    def __call__(self, value: Any) -> datetime:
        if isinstance(value, str):
            moment = _parse_timestamp_text(value.strip())
        elif isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        else:
            raise BadValue(f"unparsable timestamp {value!r}")
        if not EARLIEST_YEAR <= moment.year < LATEST_YEAR:
            raise BadValue(f"implausible timestamp {value!r}")
        if moment.tzinfo is not None:
            return moment.astimezone(UTC).replace(tzinfo=None)
        if self.fixed is not None and moment.year >= 1992:
            return moment - self.fixed
        return moment.replace(tzinfo=self.zone).astimezone(UTC).replace(tzinfo=None)


def _parse_timestamp_text(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    if text.isdigit() and len(text) in (8, 14):
        try:
            return datetime.strptime(text, "%Y%m%d%H%M%S" if len(text) == 14 else "%Y%m%d")
        except ValueError:
            pass
    raise BadValue(f"unparsable timestamp {text!r}")


def to_text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    return text or None


def to_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise BadValue(f"expected an integer {what}, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str | Decimal):
        try:
            number = int(str(value).strip())
        except ValueError:
            raise BadValue(f"expected an integer {what}, got {value!r}") from None
    else:
        raise BadValue(f"expected an integer {what}, got {value!r}")
    if number < 0:
        raise BadValue(f"negative {what} {number}")
    return number


def to_decimal(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadValue(f"expected a decimal {what}, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise BadValue(f"invalid {what} {value!r}")
    return number.quantize(Decimal("0.01"))


def to_choice(value: Any, field: Field) -> str:
    text = to_text(value) or ""
    normalised = text.upper() if field.choices == LIMIT_UNITS else text.lower()
    if normalised not in field.choices:
        expected = ", ".join(field.choices)
        raise BadValue(f"unknown {field.what} {text!r} (expected one of {expected})")
    return normalised


def content_hash(values: Sequence[Any]) -> str:
    """A short digest of values, to recognise the same content seen again."""
    return hashlib.blake2b(repr(tuple(values)).encode(), digest_size=16).hexdigest()
