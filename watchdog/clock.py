"""The legal clock of one case: due dates, counted days and the grade of a finding.

Pure functions over dates. The caller converts timestamps to dates in the source's zone
and drops events after the evaluation instant; as a safeguard, anything dated after the
evaluation date is treated the same way here (not happened yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Literal, NamedTuple

from watchdog.calendar import WorkCalendar

PAUSE_KINDS = frozenset(
    {"extension", "hearing", "expert_review", "testing", "site_survey", "supplement", "other"}
)
# 《行政许可法》 art. 45: these periods are not counted; an extension instead adds days.
STOPPING_KINDS = PAUSE_KINDS - {"extension"}


class Severity(StrEnum):
    """Grade of a finding: 预警, 黄牌, 红牌."""

    WARNING = "warning"
    YELLOW = "yellow"
    RED = "red"

    @property
    def rank(self) -> int:
        """1, 2, 3 for warning, yellow, red, so grades can be compared."""
        return _RANKS[self]


_RANKS = {Severity.WARNING: 1, Severity.YELLOW: 2, Severity.RED: 3}


@dataclass(frozen=True, slots=True)
class PauseSpan:
    """A special procedure (特别程序). `end` None while it runs.

    A stopping pause covers start..end inclusive; an end before the start covers nothing.
    """

    kind: str
    start: date
    end: date | None
    granted_days: int | None = None

    def __post_init__(self) -> None:
        if self.granted_days is not None and self.granted_days < 0:
            raise ValueError(f"granted_days must be >= 0, got {self.granted_days!r}")


@dataclass(frozen=True, slots=True)
class CaseClock:
    """What the clock needs to know about one case, as dates in the source's zone."""

    accepted: date | None
    completed: date | None
    promised_limit: int
    statutory_limit: int | None
    unit: Literal["W", "N"]
    pauses: tuple[PauseSpan, ...] = ()

    def __post_init__(self) -> None:
        if self.promised_limit < 0:
            raise ValueError(f"promised_limit must be >= 0, got {self.promised_limit!r}")
        if self.statutory_limit is not None and self.statutory_limit < 0:
            raise ValueError(f"statutory_limit must be >= 0, got {self.statutory_limit!r}")
        if self.unit not in ("W", "N"):
            raise ValueError(f'unit must be "W" or "N", got {self.unit!r}')


@dataclass(frozen=True, slots=True)
class GradingPolicy:
    """Thresholds: warn at <= warning_days remaining; red this many days past promised."""

    warning_days: int = 2
    red_days_past_promised: int = 5

    def __post_init__(self) -> None:
        if self.warning_days < 0:
            raise ValueError(f"warning_days must be >= 0, got {self.warning_days!r}")
        if self.red_days_past_promised < 0:
            raise ValueError(
                f"red_days_past_promised must be >= 0, got {self.red_days_past_promised!r}"
            )


# Deadline and ClockReading are named tuples, not frozen dataclasses: a full evaluation
# reads a million clocks, four of these each, and a frozen dataclass's __init__ (a
# setattr call per field) cost three times as much.
class Deadline(NamedTuple):
    """The `limit`-th counted day. `due` None: not known yet (a pause runs before it)."""

    limit: int
    due: date | None
    provisional: bool


class ClockReading(NamedTuple):
    """The clock of one case as of `evaluated_on`."""

    evaluated_on: date
    decision_date: date  # completion date if completed, else evaluated_on
    promised: Deadline
    statutory: Deadline | None
    red: Deadline  # statutory, or promised + red_days_past_promised without one
    counted_days: int  # counted days d with accepted < d <= decision_date
    remaining_days: int | None  # open and not past due: counted days in (evaluated_on, due]
    days_late: int | None  # past promised due: counted days in (due, decision_date]
    severity: Severity | None
    provisional: bool  # the deciding deadline lies past the calendar's coverage


_ONE_DAY = timedelta(days=1)  # built once: timedelta() is slow on the hot path
_Count = Callable[[date, date], int]
_Nth = Callable[[date, int], date]
_Span = tuple[date, date, bool]  # a merged stopping interval: start, end, still running


def _count_natural(after: date, through: date) -> int:
    return max(0, through.toordinal() - after.toordinal())


def _nth_natural(start: date, n: int) -> date:
    return date.fromordinal(start.toordinal() + n)  # 3x faster than building a timedelta


def read_clock(
    case: CaseClock,
    on: date,
    calendar: WorkCalendar,
    policy: GradingPolicy = GradingPolicy(),  # frozen, so sharing the default is safe
) -> ClockReading | None:
    """Read the clock of `case` on date `on`; None when the case is not accepted (yet).

    Algorithm, O(pauses + log days), never a loop over days:

    1. No acceptance, or acceptance after `on`: no clock. A completion after `on` has not
       happened yet, so the case is open and the decision date is `on`.
    2. Stopping pauses that started by `on` become intervals [start, end]; a running one
       (or one ending after `on`) ends at `on` and is marked running. Each start is moved
       to A + 1 (days up to A are never counted); empty ones are dropped unless running,
       and the rest are sorted and merged when they overlap or touch.
    3. limit = promised_limit + granted_days of the extensions started by `on`.
    4. Due date for a limit L: 0 gives A. Otherwise walk the gaps between merged
       intervals with a cursor starting at A: the gap (cursor, interval start) holds
       count(cursor, start - 1) counted days; if that reaches the days still needed, the
       due date is nth(cursor, needed); otherwise subtract, and move the cursor to the
       interval's end. Reaching a running interval first means the due date is unknown.
       After the last interval: nth(cursor, needed). count/nth are the calendar's
       working-day functions (unit W) or plain date arithmetic (unit N).
    5. Counted days through x: count(A, x) minus count over each merged interval's part
       before x.
    6. Grade with the decision date D: red when D > red due; else yellow when D >
       promised due; else warning when open with remaining_days <= warning_days.
       Provisional when the deciding deadline (red for red, otherwise promised) is past
       coverage; unit N never is.
    """
    accepted = case.accepted
    if accepted is None or accepted > on:
        return None
    completed = case.completed if case.completed is not None and case.completed <= on else None
    decision = on if completed is None else completed

    natural = case.unit == "N"
    count: _Count = _count_natural if natural else calendar.count_workdays
    nth: _Nth = _nth_natural if natural else calendar.nth_workday_after

    extra, merged = _stopping_spans(case.pauses, accepted, on) if case.pauses else (0, [])
    covering = None if natural else calendar  # unit N deadlines are never provisional

    promised = _deadline(
        case.promised_limit + extra, accepted, merged, count, nth, covering=covering
    )
    if case.statutory_limit is not None:
        statutory = _deadline(
            case.statutory_limit + extra, accepted, merged, count, nth, covering=covering
        )
        red = statutory
    else:
        statutory = None
        red_limit = promised.limit + policy.red_days_past_promised
        red = _deadline(red_limit, accepted, merged, count, nth, covering=covering)

    if merged:
        counted_days = _counted(accepted, decision, merged, count)
    else:
        counted_days = count(accepted, decision)
    remaining = late = None
    due = promised.due
    if due is not None:
        # The due date is the limit-th counted day, so exactly `limit` days count through it.
        if decision > due:
            late = counted_days - promised.limit
        elif completed is None:
            remaining = promised.limit - counted_days

    severity: Severity | None = None
    deciding = promised
    if red.due is not None and decision > red.due:
        severity, deciding = Severity.RED, red
    elif late is not None:
        severity = Severity.YELLOW
    elif remaining is not None and remaining <= policy.warning_days:
        severity = Severity.WARNING
    return ClockReading(
        evaluated_on=on,
        decision_date=decision,
        promised=promised,
        statutory=statutory,
        red=red,
        counted_days=counted_days,
        remaining_days=remaining,
        days_late=late,
        severity=severity,
        provisional=deciding.provisional,
    )


def _deadline(
    limit: int,
    accepted: date,
    merged: list[_Span],
    count: _Count,
    nth: _Nth,
    *,
    covering: WorkCalendar | None,
) -> Deadline:
    """The deadline for `limit` (step 4), provisional if due past `covering`'s coverage."""
    if limit == 0:
        due: date | None = accepted
    elif merged:
        due = _due(accepted, limit, merged, count, nth)
    else:
        due = nth(accepted, limit)
    provisional = covering is not None and due is not None and not covering.is_covered(due)
    return Deadline(limit, due, provisional)


def _stopping_spans(
    pauses: tuple[PauseSpan, ...], accepted: date, on: date
) -> tuple[int, list[_Span]]:
    """Extension days granted by `on`, and the merged stopping intervals (step 2)."""
    extra = 0
    spans: list[_Span] = []
    first_counted = accepted + _ONE_DAY
    for pause in pauses:
        if pause.start > on:
            continue  # not started yet as of `on`
        if pause.kind == "extension":
            extra += pause.granted_days or 0
            continue
        running = pause.end is None or pause.end > on
        end = on if running or pause.end is None else pause.end
        start = max(pause.start, first_counted)
        # A pause running on the acceptance day covers no counted day yet, but it still
        # holds the clock: keep it (empty) so the due date stays unknown.
        if start <= end or running:
            spans.append((start, end, running))
    return extra, _merge(spans) if len(spans) > 1 else spans


def _counted(accepted: date, through: date, merged: list[_Span], count: _Count) -> int:
    """Counted days d with accepted < d <= through (step 5)."""
    total = count(accepted, through)
    for start, end, _ in merged:
        if start > through:
            break
        total -= count(start - _ONE_DAY, min(end, through))
    return total


def _merge(spans: list[_Span]) -> list[_Span]:
    """Sort and merge overlapping or adjacent intervals; merged is running if any part is."""
    spans.sort()
    merged = [spans[0]]
    for start, end, running in spans[1:]:
        last_start, last_end, last_running = merged[-1]
        if start <= last_end + _ONE_DAY:
            merged[-1] = (last_start, max(last_end, end), last_running or running)
        else:
            merged.append((start, end, running))
    return merged


def _due(accepted: date, limit: int, merged: list[_Span], count: _Count, nth: _Nth) -> date | None:
    """The limit-th counted day after `accepted`, or None while a pause holds it back."""
    if limit == 0:
        return accepted
    cursor, needed = accepted, limit
    for start, end, running in merged:
        available = count(cursor, start - _ONE_DAY)
        if available >= needed:
            return nth(cursor, needed)
        if running:
            return None
        needed -= available
        cursor = end
    return nth(cursor, needed)
