"""Working-day calendar: the State Council holiday notices, plus a local override file.

Official data comes from the `chinese_calendar` package, which only knows the years whose
notice was published when it was released. The next year's notice appears around
November, so a running daemon regularly meets dates nobody covers yet. For those it counts
Monday–Friday, says so once in the log, and lets callers ask `is_covered` so that a
deadline computed there can be marked provisional. An operator closes the gap by copying
the notice into an override file (see calendar.example.toml).

Counting is the hot path (about a million cases per evaluation), so every covered day is
precomputed once as a cumulative working-day count indexed by date ordinal; outside the
covered years the count has a closed form (Monday–Friday). Every query is then O(1), or
O(log n) for `nth_workday_after`.
"""

from __future__ import annotations

import logging
import re
import tomllib
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import chinese_calendar

log = logging.getLogger(__name__)

_YEAR_KEY = re.compile(r"^\d{4}$")
_YEAR_KEYS = ("holidays", "makeup_workdays")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CalendarError(ValueError):
    """A problem in a calendar override file, naming the file, the key path and the value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class CalendarOverrides:
    """Days declared in a local override file.

    `years` are the years the file declares; each is taken as complete (weekends off, the
    listed holidays off, the listed make-up days on). For years the official data already
    covers, only the listed dates change.
    """

    holidays: frozenset[date]
    makeup_workdays: frozenset[date]
    years: frozenset[int]


def load_overrides(path: Path) -> CalendarOverrides:
    """Read and validate an override file; raise CalendarError listing every problem."""
    file = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalendarError([f"{path}: file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11 only carries the position inside the message text.
        message = str(exc)
        position = _TOML_POSITION.search(message)
        if position is None:
            raise CalendarError([f"{file}: invalid TOML: {message}"]) from None
        line, column = position.groups()
        text = message[: position.start()]
        raise CalendarError(
            [f"{file}: line {line}, column {column}: invalid TOML: {text}"]
        ) from None

    problems: list[str] = []
    holidays: set[date] = set()
    makeup: set[date] = set()
    years: set[int] = set()
    for key in sorted(set(data) - {"years"}):
        problems.append(f"{file}: {key}: unknown key (expected years)")
    table = data.get("years", {})
    if not isinstance(table, dict):
        problems.append(f"{file}: years: expected a table like [years.2027], got {table!r}")
        table = {}
    official = _official_years()
    for year_key, entry in table.items():
        where = f"{file}: years.{year_key}"
        if not _YEAR_KEY.match(year_key) or int(year_key) < 1:
            problems.append(f'{where}: expected a year like 2027, got "{year_key}"')
            continue
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a table with holidays and makeup_workdays")
            continue
        year = int(year_key)
        years.add(year)
        for key in sorted(set(entry) - set(_YEAR_KEYS)):
            problems.append(f"{where}.{key}: unknown key (expected holidays, makeup_workdays)")
        if "holidays" not in entry and year not in official:
            # An empty year would silently read as "weekends only": demand the notice.
            problems.append(
                f"{where}: holidays is required for a year the official data does not cover"
            )
        year_holidays = _read_dates(entry.get("holidays", []), year, f"{where}.holidays", problems)
        year_makeup = _read_dates(
            entry.get("makeup_workdays", []), year, f"{where}.makeup_workdays", problems
        )
        listed_holidays = {day for _, day in year_holidays}
        for index, day in year_makeup:
            label = f"{where}.makeup_workdays[{index}]"
            if day.weekday() < 5:
                problems.append(
                    f'{label}: a make-up working day must be a Saturday or Sunday, got "{day}" '
                    f"({_WEEKDAY_NAMES[day.weekday()]})"
                )
            elif day in listed_holidays:
                problems.append(f'{label}: "{day}" is also listed in years.{year}.holidays')
        holidays.update(d for _, d in year_holidays)
        makeup.update(d for _, d in year_makeup)
    if problems:
        raise CalendarError(problems)
    return CalendarOverrides(frozenset(holidays), frozenset(makeup), frozenset(years))


def _read_dates(raw: Any, year: int, where: str, problems: list[str]) -> list[tuple[int, date]]:
    """Expand a list of dates and inclusive ranges "A..B", each paired with its list index."""
    if not isinstance(raw, list):
        problems.append(f"{where}: expected a list of dates, got {raw!r}")
        return []
    found: list[tuple[int, date]] = []
    for index, item in enumerate(raw):
        label = f"{where}[{index}]"
        span = _parse_span(item)
        if span is None:
            shown = f'"{item}"' if isinstance(item, str) else repr(item)
            problems.append(
                f'{label}: expected a date like "{year}-02-06" or a range '
                f'"{year}-02-06..{year}-02-12", got {shown}'
            )
            continue
        first, last = span
        if last < first:
            problems.append(f'{label}: range ends before it starts, got "{item}"')
        elif first.year != year or last.year != year:
            problems.append(f'{label}: "{item}" is not in year {year}')
        else:
            found.extend((index, first + timedelta(days=i)) for i in range((last - first).days + 1))
    return found


def _parse_span(item: object) -> tuple[date, date] | None:
    # TOML also allows bare dates (holidays = [2027-01-01]); accept them as well.
    if isinstance(item, date):
        return item, item
    if not isinstance(item, str):
        return None
    parts = item.split("..")
    if len(parts) > 2:
        return None
    try:
        days = [date.fromisoformat(part.strip()) for part in parts]
    except ValueError:
        return None
    if any(len(part.strip()) != 10 for part in parts):  # reject "20270101" and friends
        return None
    return days[0], days[-1]


def _official_years() -> range:
    """The years chinese_calendar has notices for (its own is_workday raises outside them)."""
    known = [day.year for day in chinese_calendar.holidays]
    return range(min(known), max(known) + 1)


def _weekdays_through(ordinal: int) -> int:
    """Monday–Friday dates with ordinal 1..ordinal (ordinal 1, 0001-01-01, is a Monday)."""
    weeks, rest = divmod(ordinal, 7)
    return 5 * weeks + min(rest, 5)


def _weekday_ordinal(rank: int) -> int:
    """Smallest ordinal whose _weekdays_through is >= rank (rank >= 1): the inverse above."""
    weeks, rest = divmod(rank - 1, 5)
    return 7 * weeks + rest + 1


class WorkCalendar:
    """Working days: official data, corrected and extended by optional overrides."""

    def __init__(self, overrides: CalendarOverrides | None = None) -> None:
        overrides = overrides or CalendarOverrides(frozenset(), frozenset(), frozenset())
        official = _official_years()
        first, last = official.start, official.stop - 1
        # Coverage is one contiguous run of years: a declared 2028 after a missing 2027
        # cannot be trusted to mean "2027 is ordinary", so it is left out until 2027 comes.
        while first - 1 in overrides.years:
            first -= 1
        while last + 1 in overrides.years:
            last += 1
        stranded = sorted(y for y in overrides.years if not first <= y <= last)
        if stranded:
            log.warning(
                "calendar overrides declare %s but not every year in between; "
                "coverage ends %s and those years are ignored until the gap is filled",
                ", ".join(map(str, stranded)),
                date(last, 12, 31),
            )
        self._first = date(first, 1, 1)
        self._last = date(last, 12, 31)
        self._lo = self._first.toordinal()
        self._hi = self._last.toordinal()
        self._flags, self._cum = self._tabulate(official, overrides)
        # Past the table the count continues Monday–Friday from where the table ended.
        self._tail = self._cum[-1] - _weekdays_through(self._hi)
        self._warned = False

    def _tabulate(self, official: range, overrides: CalendarOverrides) -> tuple[bytes, list[int]]:
        """Working-day flag per covered day, and cum[i] = working days with ordinal < lo + i."""
        flags = bytearray()
        cum = [_weekdays_through(self._lo - 1)]
        total = cum[0]
        for ordinal in range(self._lo, self._hi + 1):
            day = date.fromordinal(ordinal)
            if day in overrides.holidays:
                working = False
            elif day in overrides.makeup_workdays:
                working = True
            elif day.year in official:
                working = day in chinese_calendar.workdays or (
                    day.weekday() < 5 and day not in chinese_calendar.holidays
                )
            else:
                working = day.weekday() < 5
            flags.append(working)
            total += working
            cum.append(total)
        return bytes(flags), cum

    @property
    def coverage_end(self) -> date:
        """The last date the calendar has notice data for."""
        return self._last

    def is_covered(self, d: date) -> bool:
        """Whether `d` falls in a year with notice data (official or override)."""
        return self._lo <= d.toordinal() <= self._hi

    def is_workday(self, d: date) -> bool:
        """Whether `d` is a working day; outside coverage, Monday–Friday (warned once)."""
        ordinal = d.toordinal()
        if self._lo <= ordinal <= self._hi:
            return bool(self._flags[ordinal - self._lo])
        self._warn_uncovered(d)
        return d.weekday() < 5

    def count_workdays(self, after: date, through: date) -> int:
        """Working days d with after < d <= through (0 when through <= after)."""
        start, end = after.toordinal(), through.toordinal()
        if end <= start:
            return 0
        lo = self._lo
        if lo <= start and end <= self._hi:  # the common, fully covered case, inlined
            cum = self._cum
            return cum[end - lo + 1] - cum[start - lo + 1]
        if not self._warned:
            self._check_covered(start, end)
        return self._rank(end) - self._rank(start)

    def nth_workday_after(self, start: date, n: int) -> date:
        """The n-th working day strictly after `start` (n >= 1)."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        after = start.toordinal()
        lo, cum = self._lo, self._cum
        if lo <= after <= self._hi:  # the common case, inlined
            index = after - lo + 1
            target = cum[index] + n
            if target <= cum[-1]:
                return date.fromordinal(lo - 1 + bisect_left(cum, target, index))
        target = self._rank(after) + n
        if target <= cum[0]:
            ordinal = _weekday_ordinal(target)
        elif target <= cum[-1]:
            ordinal = lo - 1 + bisect_left(cum, target)
        else:
            ordinal = _weekday_ordinal(target - self._tail)
        if not self._warned:
            self._check_covered(after, ordinal)
        return date.fromordinal(ordinal)

    def _rank(self, ordinal: int) -> int:
        """Working days with ordinal <= `ordinal`, counted from 0001-01-01."""
        index = ordinal - self._lo + 1
        if index <= 0:
            return _weekdays_through(ordinal)
        if index < len(self._cum):
            return self._cum[index]
        return _weekdays_through(ordinal) + self._tail

    def _check_covered(self, after: int, through: int) -> None:
        """Warn if any ordinal in after < o <= through lies outside coverage."""
        if after + 1 < self._lo:
            self._warn_uncovered(date.fromordinal(after + 1))
        elif through > self._hi:
            self._warn_uncovered(date.fromordinal(max(after + 1, self._hi + 1)))

    def _warn_uncovered(self, d: date) -> None:
        if self._warned:
            return
        self._warned = True
        log.warning(
            "working-day calendar has no holiday notice for %s (covered %s to %s): counting "
            "Monday-Friday as working days; deadlines there are provisional until the year "
            "is added to the calendar override file",
            d,
            self._first,
            self._last,
        )
