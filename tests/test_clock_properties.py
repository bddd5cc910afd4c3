"""Property tests: read_clock against a day-by-day reference, and monotonicity laws."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from functools import cache

import chinese_calendar
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.calendar import WorkCalendar
from watchdog.clock import (
    PAUSE_KINDS,
    STOPPING_KINDS,
    CaseClock,
    ClockReading,
    GradingPolicy,
    PauseSpan,
    Severity,
    read_clock,
)

CALENDAR = WorkCalendar()
POLICY = GradingPolicy()
FIRST, LAST = date(2025, 1, 1), date(2027, 6, 30)
EXAMPLES = settings(max_examples=200, deadline=None)


def offsets(low: int, high: int) -> st.SearchStrategy[timedelta]:
    return st.integers(low, high).map(lambda days: timedelta(days=days))


@st.composite
def pauses(draw: st.DrawFn, accepted: date, kinds: frozenset[str] = PAUSE_KINDS) -> PauseSpan:
    kind = draw(st.sampled_from(sorted(kinds)))
    start = accepted + draw(offsets(-5, 60))
    end = draw(st.none() | offsets(-2, 30).map(lambda span: start + span))
    granted = draw(st.none() | st.integers(0, 15)) if kind == "extension" else None
    return PauseSpan(kind, start, end, granted)


@st.composite
def cases(draw: st.DrawFn, *, open_only: bool = False) -> CaseClock:
    accepted = draw(st.dates(FIRST, date(2026, 12, 31)))
    completed = None if open_only else draw(st.none() | offsets(0, 120).map(accepted.__add__))
    return CaseClock(
        accepted=accepted,
        completed=completed,
        promised_limit=draw(st.integers(0, 30)),
        statutory_limit=draw(st.none() | st.integers(0, 60)),
        unit=draw(st.sampled_from(["W", "N"])),
        pauses=tuple(draw(st.lists(pauses(accepted), max_size=3))),
    )


def evaluated(clock: CaseClock) -> st.SearchStrategy[date]:
    assert clock.accepted is not None
    return offsets(0, 120).map(clock.accepted.__add__)


def reading_of(clock: CaseClock, on: date) -> ClockReading:
    reading = read_clock(clock, on, CALENDAR, POLICY)
    assert reading is not None
    return reading


# ---- the reference: literally the definition in docs/domain.md, one day at a time ----


@cache  # chinese_calendar re-validates its whole table on every call
def official_workday(day: date) -> bool:
    if 2004 <= day.year <= 2026:
        return bool(chinese_calendar.is_workday(day))
    return day.weekday() < 5


class Reference:
    def __init__(self, clock: CaseClock, on: date) -> None:
        assert clock.accepted is not None
        self.clock, self.on, self.accepted = clock, on, clock.accepted
        started = [p for p in clock.pauses if p.start <= on]  # later ones have not happened
        self.extra = sum(p.granted_days or 0 for p in started if p.kind == "extension")
        self.stops = []
        self.running_starts = []
        for p in started:
            if p.kind == "extension":
                continue
            if p.end is None or p.end > on:  # running: covers through `on`
                self.stops.append((p.start, on))
                self.running_starts.append(p.start)
            else:
                self.stops.append((p.start, p.end))
        done = clock.completed is not None and clock.completed <= on
        self.completed = clock.completed if done else None
        self.decision = self.completed or on

    def counted(self, day: date) -> bool:
        working = self.clock.unit == "N" or official_workday(day)
        paused = any(start <= day <= end for start, end in self.stops)
        return day > self.accepted and working and not paused

    def counted_through(self, last: date) -> int:
        total, day = 0, self.accepted + timedelta(days=1)
        while day <= last:
            total += self.counted(day)
            day += timedelta(days=1)
        return total

    def due(self, limit: int) -> date | None:
        if limit == 0:
            return self.accepted
        seen, day = 0, self.accepted
        while seen < limit:
            day += timedelta(days=1)
            seen += self.counted(day)
        # A running pause that began before the limit was reached hides the due date.
        if any(start <= day for start in self.running_starts):
            return None
        return day

    def severity(self) -> Severity | None:
        promised = self.due(self.clock.promised_limit + self.extra)
        if self.clock.statutory_limit is not None:
            red = self.due(self.clock.statutory_limit + self.extra)
        else:
            red = self.due(self.clock.promised_limit + self.extra + POLICY.red_days_past_promised)
        if red is not None and self.decision > red:
            return Severity.RED
        if promised is not None and self.decision > promised:
            return Severity.YELLOW
        if promised is not None and self.completed is None:
            remaining = self.counted_through(promised) - self.counted_through(self.on)
            if remaining <= POLICY.warning_days:
                return Severity.WARNING
        return None


@EXAMPLES
@given(st.data())
def test_read_clock_agrees_with_a_day_by_day_reference(data: st.DataObject) -> None:
    clock = data.draw(cases())
    on = data.draw(evaluated(clock))
    reading, ref = reading_of(clock, on), Reference(clock, on)

    promised = ref.due(clock.promised_limit + ref.extra)
    assert reading.promised.due == promised
    if clock.statutory_limit is None:
        assert reading.statutory is None
        red_limit = clock.promised_limit + ref.extra + POLICY.red_days_past_promised
    else:
        assert reading.statutory is not None
        red_limit = clock.statutory_limit + ref.extra
        assert reading.statutory.due == ref.due(red_limit)
    assert reading.red.due == ref.due(red_limit)
    assert reading.decision_date == ref.decision
    assert reading.counted_days == ref.counted_through(ref.decision)
    if promised is not None and ref.completed is None and on <= promised:
        assert reading.remaining_days == ref.counted_through(promised) - ref.counted_through(on)
    else:
        assert reading.remaining_days is None
    if promised is not None and ref.decision > promised:
        late = ref.counted_through(ref.decision) - ref.counted_through(promised)
        assert reading.days_late == late
    else:
        assert reading.days_late is None
    assert reading.severity == ref.severity()
    deciding = reading.red if reading.severity is Severity.RED else reading.promised
    past_coverage = deciding.due is not None and deciding.due > date(2026, 12, 31)
    assert reading.provisional == (clock.unit == "W" and past_coverage)


@EXAMPLES
@given(st.data())
def test_adding_a_stopping_pause_never_makes_the_due_date_earlier(data: st.DataObject) -> None:
    clock = data.draw(cases())
    on = data.draw(evaluated(clock))
    assert clock.accepted is not None
    extra = data.draw(pauses(clock.accepted, STOPPING_KINDS))
    before = reading_of(clock, on).promised.due
    after = reading_of(replace(clock, pauses=(*clock.pauses, extra)), on).promised.due
    if before is None:
        assert after is None
    elif after is not None:
        assert after >= before


@EXAMPLES
@given(st.data())
def test_adding_an_extension_never_makes_the_due_date_earlier(data: st.DataObject) -> None:
    clock = data.draw(cases())
    on = data.draw(evaluated(clock))
    assert clock.accepted is not None
    extension = data.draw(pauses(clock.accepted, frozenset({"extension"})))
    before = reading_of(clock, on).promised.due
    after = reading_of(replace(clock, pauses=(*clock.pauses, extension)), on).promised.due
    if before is None:
        assert after is None
    elif after is not None:
        assert after >= before


@EXAMPLES
@given(st.data())
def test_due_dates_are_never_before_acceptance(data: st.DataObject) -> None:
    clock = data.draw(cases())
    reading = reading_of(clock, data.draw(evaluated(clock)))
    assert clock.accepted is not None
    for deadline in (reading.promised, reading.statutory, reading.red):
        if deadline is not None and deadline.due is not None:
            assert deadline.due >= clock.accepted


@EXAMPLES
@given(st.dates(FIRST, LAST), st.integers(0, 400), offsets(0, 600))
def test_natural_days_without_pauses_fall_due_limit_days_after_acceptance(
    accepted: date, limit: int, later: timedelta
) -> None:
    reading = reading_of(CaseClock(accepted, None, limit, None, "N"), accepted + later)
    assert reading.promised.due == accepted + timedelta(days=limit)
    assert reading.provisional is False


@EXAMPLES
@given(st.dates(date(1990, 1, 1), date(2040, 12, 31)), st.integers(1, 600))
def test_counting_up_to_the_nth_working_day_gives_n(start: date, n: int) -> None:
    day = CALENDAR.nth_workday_after(start, n)
    assert CALENDAR.count_workdays(start, day) == n
    assert CALENDAR.is_workday(day)


@EXAMPLES
@given(st.data())
def test_severity_of_an_open_case_never_drops_as_time_passes(data: st.DataObject) -> None:
    clock = data.draw(cases(open_only=True))
    first = data.draw(evaluated(clock))
    # Everything has begun by the first reading; only the passing days change.
    started = tuple(p for p in clock.pauses if p.start <= first)
    clock = replace(clock, pauses=started)
    steps = data.draw(st.lists(st.integers(1, 20), min_size=1, max_size=6))
    previous, on = 0, first
    for step in [0, *steps]:
        on += timedelta(days=step)
        severity = reading_of(clock, on).severity
        rank = 0 if severity is None else severity.rank
        assert rank >= previous, on
        previous = rank
