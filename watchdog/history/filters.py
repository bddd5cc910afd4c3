"""What an auditor asks for: a frozen, validated filter over violations, a sort order
and a page.

The same parameter names serve the CLI (`--opened-from`), the HTTP API
(`?opened_from=`) and the console, so `parse_query` reads text values from any of
them. A bad value raises `FilterError` naming the parameter and the value
(`severity: expected one of warning, yellow, red, got "purple"`), never a database
error later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

SEVERITIES = ("warning", "yellow", "red")
STATES = ("open", "resolved")
# Column a sort key orders by; the id always breaks ties so pages never overlap.
SORT_KEYS = (
    "id",
    "opened_at",
    "resolved_at",
    "last_seen_at",
    "severity",
    "dept",
    "rule",
    "case",
    "source",
)
DEFAULT_SORT = "-opened_at"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PAGE = 100_000  # keeps OFFSET within what every database accepts
MAX_VALUES = 100  # values per multi-valued filter: bounds the IN (...) list
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # kinds and finding codes
# Codes and ids come from source systems: anything printable, but no control characters
# (PostgreSQL refuses NUL in text) and no comma (the list separator).
_CODE = re.compile(r"^[^\x00-\x1f\x7f,]{1,128}$")

TEXT_FILTERS = ("dept", "rule", "kind", "finding", "severity", "state", "source", "case")
DATE_FILTERS = ("opened_from", "opened_to", "resolved_from", "resolved_to")
QUERY_PARAMETERS = (*TEXT_FILTERS, *DATE_FILTERS, "sort", "page", "page_size")


class FilterError(ValueError):
    """A filter, sort or page value that cannot be used; names the parameter."""

    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"{parameter}: {reason}")


def _check_values(parameter: str, values: tuple[str, ...], pattern: re.Pattern[str]) -> None:
    if len(values) > MAX_VALUES:
        raise FilterError(parameter, f"at most {MAX_VALUES} values, got {len(values)}")
    for value in values:
        if not pattern.match(value):
            raise FilterError(parameter, f"not a valid value, got {value!r}")


def _check_choices(parameter: str, values: tuple[str, ...], choices: Sequence[str]) -> None:
    for value in values:
        if value not in choices:
            raise FilterError(parameter, f"expected one of {', '.join(choices)}, got {value!r}")


def _check_range(name: str, start: date | None, end: date | None) -> None:
    for suffix, day in (("from", start), ("to", end)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise FilterError(f"{name}_{suffix}", f"must be within 1900-2999, got {day}")
    if start is not None and end is not None and start > end:
        raise FilterError(f"{name}_from", f"{start} is after {name}_to {end}")


@dataclass(frozen=True)
class ViolationFilter:
    """Violations matching every given criterion; within one criterion any value.

    Dates are local (Asia/Shanghai) calendar days, both ends included: `opened_from`
    2026-04-01 and `opened_to` 2026-06-30 is the second quarter.
    """

    dept: tuple[str, ...] = ()
    rule: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    finding: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    case: tuple[str, ...] = ()
    opened_from: date | None = None
    opened_to: date | None = None
    resolved_from: date | None = None
    resolved_to: date | None = None

    def __post_init__(self) -> None:
        for name in ("dept", "rule", "source", "case"):
            _check_values(name, getattr(self, name), _CODE)
        for name in ("kind", "finding"):
            _check_values(name, getattr(self, name), _NAME)
        _check_choices("severity", self.severity, SEVERITIES)
        _check_choices("state", self.state, STATES)
        _check_range("opened", self.opened_from, self.opened_to)
        _check_range("resolved", self.resolved_from, self.resolved_to)

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (comma-joined), for links that keep it."""
        params: dict[str, str] = {}
        for name in TEXT_FILTERS:
            values: tuple[str, ...] = getattr(self, name)
            if values:
                params[name] = ",".join(values)
        for name in DATE_FILTERS:
            day: date | None = getattr(self, name)
            if day is not None:
                params[name] = day.isoformat()
        return params


@dataclass(frozen=True)
class Sort:
    """Sort keys in order; each (key, descending). The id breaks ties."""

    keys: tuple[tuple[str, bool], ...] = (("opened_at", True),)

    def __post_init__(self) -> None:
        if not self.keys:
            raise FilterError("sort", "at least one sort key is required")
        for key, _ in self.keys:
            if key not in SORT_KEYS:
                raise FilterError(
                    "sort", f"expected keys among {', '.join(SORT_KEYS)}, got {key!r}"
                )

    @classmethod
    def parse(cls, text: str) -> Sort:
        """`-opened_at,severity`: comma-separated keys, `-` for descending."""
        keys = []
        for raw in text.split(","):
            part = raw.strip()
            descending = part.startswith("-")
            key = part.lstrip("-+")
            if key not in SORT_KEYS:
                raise FilterError(
                    "sort", f"expected keys among {', '.join(SORT_KEYS)}, got {part!r}"
                )
            keys.append((key, descending))
        return cls(tuple(keys))

    def text(self) -> str:
        return ",".join(("-" if descending else "") + key for key, descending in self.keys)


@dataclass(frozen=True)
class Page:
    """A 1-based page of at most MAX_PAGE_SIZE rows."""

    number: int = 1
    size: int = DEFAULT_PAGE_SIZE

    def __post_init__(self) -> None:
        if not 1 <= self.number <= MAX_PAGE:
            raise FilterError("page", f"must be 1..{MAX_PAGE}, got {self.number}")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise FilterError("page_size", f"must be 1..{MAX_PAGE_SIZE}, got {self.size}")

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True)
class Query:
    """A parsed request: what to select, in which order, which page."""

    filter: ViolationFilter = field(default_factory=ViolationFilter)
    sort: Sort = field(default_factory=Sort)
    page: Page = field(default_factory=Page)


def _split(values: Iterable[str]) -> tuple[str, ...]:
    """`?dept=A&dept=B,C` → (A, B, C); blanks ignored, order kept, duplicates dropped."""
    parts = (part.strip() for value in values for part in value.split(","))
    return tuple(dict.fromkeys(part for part in parts if part))


def _day(parameter: str, text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise FilterError(parameter, f'expected a date like "2026-06-30", got {text!r}') from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(parameter, f"must be within 1900-2999, got {text!r}")
    return day


def _integer(parameter: str, text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise FilterError(parameter, f"expected a positive whole number, got {text!r}")
    return int(text)


def parse_query(
    params: Mapping[str, Sequence[str]], *, allowed: Sequence[str] = QUERY_PARAMETERS
) -> Query:
    """Read a query from text parameters (each a list of the values given).

    Unknown parameters are refused too: a misspelt filter that silently matched
    everything would give an auditor a wrong answer.
    """
    for name in params:
        if name not in allowed:
            raise FilterError(name, f"unknown parameter (known: {', '.join(allowed)})")
    text = {name: _split(params[name]) for name in TEXT_FILTERS if name in params}
    dates: dict[str, date | None] = {}
    for name in DATE_FILTERS:
        given = [value for value in params.get(name, ()) if value.strip()]
        if len(given) > 1:
            raise FilterError(name, f"given {len(given)} times, expected once")
        dates[name] = _day(name, given[0]) if given else None
    sort_text = ",".join(params.get("sort", ())).strip() or DEFAULT_SORT
    page = _integer("page", _last(params, "page") or "1")
    size = _integer("page_size", _last(params, "page_size") or str(DEFAULT_PAGE_SIZE))
    return Query(
        filter=ViolationFilter(
            dept=text.get("dept", ()),
            rule=text.get("rule", ()),
            kind=text.get("kind", ()),
            finding=text.get("finding", ()),
            severity=text.get("severity", ()),
            state=text.get("state", ()),
            source=text.get("source", ()),
            case=text.get("case", ()),
            opened_from=dates["opened_from"],
            opened_to=dates["opened_to"],
            resolved_from=dates["resolved_from"],
            resolved_to=dates["resolved_to"],
        ),
        sort=Sort.parse(sort_text),
        page=Page(page, size),
    )


def _last(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = [value for value in params.get(name, ()) if value.strip()]
    if len(values) > 1:
        raise FilterError(name, f"given {len(values)} times, expected once")
    return values[0] if values else None
