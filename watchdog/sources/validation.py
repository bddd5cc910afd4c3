"""Checking source rows against the contract and putting them in the store's form.

A row that breaks the contract is not a reason to stop: validation returns the reason
instead of raising, and the poller quarantines the row and goes on.

This runs for every source row (millions on a first poll), so each validator is
compiled once into a straight-line function for its entity, its query's column order
and the store's encoding, the way `dataclasses` and `namedtuple` generate code. The
generated source is kept on the validator (`RowValidator.source`) for reading.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Integer, Numeric, SmallInteger, String

from watchdog.sources.entities import (
    LATEST_YEAR,
    BadValue,
    Entity,
    Field,
    UtcConverter,
    converter_for,
    to_choice,
    to_decimal,
    to_int,
    to_text,
)
from watchdog.store import schema
from watchdog.store.encoding import CANONICAL, SQLITE, StoreEncoding


@dataclass(frozen=True)
class ValidatedRow:
    """A row in canonical form: values in `Entity.column_names` order."""

    key: str
    values: tuple[Any, ...]
    names: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self.names, self.values, strict=True))


class RowValidator:
    """Checks rows of one entity from one source and puts them in the store's form.

    Rows arrive as tuples in the order of `columns` (the query's result columns,
    lower-cased) and leave as tuples in `Entity.column_names` order, between the
    constant values `before` and `after` (the store row's other columns), so the
    caller does not copy every row once more. For each field, in order:

    1. null or empty: "missing" if the field is required, else its default;
    2. text is stripped, and blank counts as null;
    3. other kinds are converted (`BadValue` becomes the reason, prefixed by the field);
    4. timestamps become UTC in the store's encoding, taking naive values in `zone`;
    5. a value the store's column cannot hold is refused like any other breach (text
       with a NUL character or longer than the column, binary data, a number past the
       column's range): PostgreSQL would otherwise fail the whole batch, every cycle,
       without naming the row, and SQLite would keep a mangled value.
    """

    def __init__(
        self,
        entity: Entity,
        zone: ZoneInfo,
        columns: Sequence[str] | None = None,
        encoding: StoreEncoding = CANONICAL,
        *,
        before: tuple[Any, ...] = (),
        after: tuple[Any, ...] = (),
    ) -> None:
        self.entity = entity
        self.names = entity.column_names
        positions = {name: index for index, name in enumerate(columns or self.names)}
        self.source, namespace = _generate(
            entity, positions, converter_for(zone), encoding, before, after
        )
        exec(compile(self.source, f"<validator {entity.name}>", "exec"), namespace)
        self.validate_values: Callable[[Sequence[Any]], tuple[Any, ...] | str] = namespace[
            "validate"
        ]

    def validate(self, row: Mapping[str, Any]) -> ValidatedRow | str:
        """Validate a row given by column name (missing columns are null)."""
        values = self.validate_values(tuple(row.get(name) for name in self.names))
        if isinstance(values, str):
            return values
        return ValidatedRow(values[0], values, self.names)


def _generate(
    entity: Entity,
    positions: Mapping[str, int],
    to_utc: UtcConverter,
    encoding: StoreEncoding,
    before: tuple[Any, ...],
    after: tuple[Any, ...],
) -> tuple[str, dict[str, Any]]:
    """Source of `validate(row)` and the names it uses."""
    namespace: dict[str, Any] = {
        "BadValue": BadValue,
        "other_text": _other_text,
        "text_problem": _text_problem,
        "fromisoformat": datetime.fromisoformat,
        "encode_time": encoding.timestamp,
        "to_utc": to_utc,
        "fixed": to_utc.fixed,
        "LATEST_YEAR": LATEST_YEAR,
        "HOURS": [f"{hour:02d}" for hour in range(24)],
    }
    splice = _splice_hours(to_utc, encoding)
    lines = ["def validate(row):"]
    key = Field(entity.key, "text", required=True)
    fields = (key, *entity.fields, Field("updated_at", "timestamp", required=True))
    limits = _store_limits(entity)
    names = []
    for index, field in enumerate(fields):
        name = f"v{index}"
        names.append(name)
        lines.append(f"    {name} = row[{positions[field.name]}]")
        if field.kind == "text":
            lines += _text_lines(name, field, limits.get(field.name))
        elif field.kind == "timestamp":
            lines += _timestamp_lines(name, field, splice)
        else:
            converter = f"convert{index}"
            namespace[converter] = _converter(field, encoding, limits.get(field.name))
            lines += _converted_lines(name, field, converter)
    constants = []
    for index, value in enumerate((*before, *after)):
        namespace[f"c{index}"] = value
        constants.append(f"c{index}")
    front, back = constants[: len(before)], constants[len(before) :]
    lines.append(f"    return ({', '.join([*front, *names, *back])},)")
    return "\n".join(lines) + "\n", namespace


def _missing(field: Field) -> str:
    return f"return {f'{field.name}: missing'!r}"


def _store_limits(entity: Entity) -> dict[str, int]:
    """Per column of the entity's store table: the longest text (String(n)), the largest
    integer (by the integer type's width) or the largest amount (Numeric(p, s)) it holds."""
    table = schema.ENTITY_TABLES.get(entity.name)
    limits: dict[str, int] = {}
    for column in () if table is None else table.columns:
        kind = column.type
        if isinstance(kind, String) and kind.length is not None:
            limits[column.name] = kind.length
        elif isinstance(kind, Integer):
            # SQLite's INTEGER holds 64 bits, PostgreSQL's 32: the narrower one decides.
            bits = (
                64 if isinstance(kind, BigInteger) else 16 if isinstance(kind, SmallInteger) else 32
            )
            limits[column.name] = 2 ** (bits - 1) - 1
        elif isinstance(kind, Numeric) and kind.precision is not None:
            limits[column.name] = 10 ** (kind.precision - (kind.scale or 0))  # exclusive
    return limits


def _text_lines(name: str, field: Field, length: int | None) -> list[str]:
    # The checks run on the text as read, before stripping (a memchr and a len): the
    # helper looks again at the stripped text only for the rare value that fails them.
    bad = f"'\\x00' in {name}" + ("" if length is None else f" or len({name}) > {length}")
    arguments = f"{field.name!r}, {name}, {length!r}"
    lines = [
        f"    if type({name}) is str:",
        f"        if {bad}:",
        f"            problem = text_problem({arguments})",
        "            if problem: return problem",
        f"        {name} = {name}.strip() or None",
        "    else:",
        f"        {name} = other_text({arguments})",
        f"        if type({name}) is tuple: return {name}[0]",
    ]
    if field.required:
        lines.append(f"    if {name} is None: {_missing(field)}")
    return lines


def _other_text(name: str, value: Any, length: int | None) -> str | tuple[str] | None:
    """A non-str source value as text (a number, a date), or (reason,): binary data is
    not text, and the text must fit the column."""
    if isinstance(value, bytes | bytearray | memoryview):
        return (f"{name}: expected text, got binary data {bytes(value[:16])!r}",)
    text = to_text(value)
    problem = None if text is None else _text_problem(name, text, length)
    return text if problem is None else (problem,)


def _text_problem(name: str, text: str, length: int | None) -> str | None:
    """Why a text (stripped here) cannot be stored, or None."""
    text = text.strip()
    shown = repr(text[:32]) + ("…" if len(text) > 32 else "")
    if "\x00" in text:
        return f"{name}: text contains a NUL character: {shown}"
    if length is not None and len(text) > length:
        return f"{name}: {len(text)} characters, the store holds at most {length}: {shown}"
    return None


def _empty_lines(name: str, field: Field) -> list[str]:
    fallback = _missing(field) if field.required else f"{name} = {field.default!r}"
    return [f"    if {name} is None or {name} == '':", f"        {fallback}"]


def _converted_lines(name: str, field: Field, converter: str) -> list[str]:
    return [
        *_empty_lines(name, field),
        "    else:",
        f"        try: {name} = {converter}({name})",
        f"        except BadValue as exc: return {field.name + ': '!r} + str(exc)",
    ]


def _splice_hours(to_utc: UtcConverter, encoding: StoreEncoding) -> int | None:
    """Hours to subtract by editing text, when the store keeps SQLite's text form and
    the zone's fixed offset is whole hours; None when that shortcut does not apply."""
    if encoding is not SQLITE or to_utc.fixed is None:
        return None
    seconds = to_utc.fixed.total_seconds()
    return int(seconds // 3600) if seconds % 3600 == 0 else None


def _timestamp_lines(name: str, field: Field, splice: int | None) -> list[str]:
    # Fast path: ISO text, naive, in a fixed-offset zone and a plausible year. Anything
    # else takes UtcConverter's full path, which also produces the precise reasons.
    convert = [f"            {name} = encode_time(moment - fixed)"]
    if splice is not None:
        # "2026-03-02 10:00:00" at +08:00 is "2026-03-02 02:00:00.000000" UTC: when
        # the UTC hour stays on the same day, only the hour digits change. The text was
        # validated by fromisoformat above; other forms and day changes take datetimes.
        convert = [
            f"            hour = moment.hour - {splice}",
            f"            if 0 <= hour < 24 and len({name}) == 19 and {name}[10] == ' ':",
            f"                {name} = {name}[:11] + HOURS[hour] + {name}[13:] + '.000000'",
            "            else:",
            f"                {name} = encode_time(moment - fixed)",
        ]
    return [
        *_empty_lines(name, field),
        "    else:",
        "        try:",
        f"            moment = fromisoformat({name}) if type({name}) is str else None",
        "        except ValueError:",
        "            moment = None",
        "        if (moment is not None and moment.tzinfo is None and fixed is not None",
        "                and 1992 <= moment.year < LATEST_YEAR):",
        *convert,
        "        else:",
        f"            try: {name} = encode_time(to_utc({name}))",
        f"            except BadValue as exc: return {field.name + ': '!r} + str(exc)",
    ]


def _converter(field: Field, encoding: StoreEncoding, limit: int | None) -> Callable[[Any], Any]:
    if field.kind == "int":
        largest = limit

        def convert_int(value: Any) -> int:
            number = to_int(value, field.what)
            if largest is not None and number > largest:
                raise BadValue(
                    f"{field.what} {number} too large (the store holds at most {largest})"
                )
            return number

        return convert_int
    if field.kind == "decimal":
        encode_decimal = encoding.decimal
        bound = limit

        def convert_decimal(value: Any) -> Any:
            number = to_decimal(value, field.what)
            if bound is not None and number >= bound:
                raise BadValue(
                    f"{field.what} {number} too large (the store holds less than {bound})"
                )
            return encode_decimal(number)

        return convert_decimal
    if field.kind == "choice":
        return lambda value: to_choice(value, field)
    raise ValueError(f"no converter for {field.kind}")
