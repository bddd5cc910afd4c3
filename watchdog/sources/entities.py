"""The canonical entities a source query must return, and how each row is checked.

A row that breaks the contract is not a reason to stop: `RowValidator.validate` returns
the reason instead of raising, and the poller quarantines the row and goes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
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
_EARLIEST_YEAR = 1970
_LATEST_YEAR = 2100


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
    business systems ("20260302093000", "20260302").
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = _parse_timestamp_text(value.strip())
    else:
        raise BadValue(f"unparsable timestamp {value!r}")
    # Placeholder dates such as 0001-01-01 or 9999-12-31 are common in business systems.
    if not _EARLIEST_YEAR <= moment.year < _LATEST_YEAR:
        raise BadValue(f"implausible timestamp {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


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


def _to_text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    return text or None


def _to_int(value: Any, what: str) -> int:
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


def _to_decimal(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadValue(f"expected a decimal {what}, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise BadValue(f"invalid {what} {value!r}")
    return number.quantize(Decimal("0.01"))


def _to_choice(value: Any, field: Field) -> str:
    text = _to_text(value) or ""
    normalised = text.upper() if field.choices == LIMIT_UNITS else text.lower()
    if normalised not in field.choices:
        expected = ", ".join(field.choices)
        raise BadValue(f"unknown {field.what} {text!r} (expected one of {expected})")
    return normalised


@dataclass(frozen=True)
class ValidatedRow:
    key: str
    values: dict[str, Any]  # canonical columns, including the key and updated_at
    row_hash: str


class RowValidator:
    """Checks rows of one entity from one source and puts them in canonical form."""

    def __init__(self, entity: Entity, zone: ZoneInfo) -> None:
        self.entity = entity
        self.zone = zone
        self._converters: list[tuple[str, bool, str | None, Callable[[Any], Any]]] = [
            (f.name, f.required, f.default, self._converter(f)) for f in entity.fields
        ]

    def _converter(self, field: Field) -> Callable[[Any], Any]:
        zone = self.zone
        if field.kind == "timestamp":
            return lambda value: parse_timestamp(value, zone)
        if field.kind == "int":
            return lambda value: _to_int(value, field.what)
        if field.kind == "decimal":
            return lambda value: _to_decimal(value, field.what)
        if field.kind == "choice":
            return lambda value: _to_choice(value, field)
        return _to_text

    def validate(self, row: Mapping[str, Any]) -> ValidatedRow | str:
        """The row in canonical form, or the reason it breaks the contract."""
        key = _to_text(row.get(self.entity.key))
        if key is None:
            return f"{self.entity.key}: missing"
        values: dict[str, Any] = {self.entity.key: key}
        for name, required, default, convert in self._converters:
            raw = row.get(name)
            if raw is None or raw == "":
                if required:
                    return f"{name}: missing"
                values[name] = default
                continue
            try:
                value = convert(raw)
            except BadValue as exc:
                return f"{name}: {exc}"
            if value is None and required:
                return f"{name}: missing"
            values[name] = value
        if row.get("updated_at") is None:
            return "updated_at: missing"
        try:
            values["updated_at"] = parse_timestamp(row["updated_at"], self.zone)
        except BadValue as exc:
            return f"updated_at: {exc}"
        return ValidatedRow(key, values, content_hash(values))


def content_hash(values: Mapping[str, Any]) -> str:
    """A short digest of a row's canonical content, to tell a change from a re-read."""
    text = "\x1f".join("" if v is None else str(v) for v in values.values())
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
