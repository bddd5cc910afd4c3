"""The legal clock, on hand-worked 2026 cases.

2026 facts used below (国务院办公厅通知): off 1/1–1/3, 2/15–2/23, 4/4–4/6, 5/1–5/5,
6/19–6/21, 9/25–9/27, 10/1–10/7; make-up working days 1/4, 2/14, 2/28, 5/9, 9/20, 10/10.
2026-02-01, 2026-03-01 are Sundays; 2026-09-28, 2026-12-28 are Mondays.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import pytest

from watchdog.calendar import WorkCalendar
from watchdog.clock import (
    STOPPING_KINDS,
    CaseClock,
    ClockReading,
    Deadline,
    GradingPolicy,
    PauseSpan,
    Severity,
    read_clock,
)

d = date.fromisoformat


@pytest.fixture(scope="module")
def calendar() -> WorkCalendar:
    return WorkCalendar()


def case(
    accepted: str,
    promised: int,
    *,
    statutory: int | None = None,
    completed: str | None = None,
    unit: Literal["W", "N"] = "W",
    pauses: tuple[PauseSpan, ...] = (),
) -> CaseClock:
    return CaseClock(
        accepted=d(accepted),
        completed=None if completed is None else d(completed),
        promised_limit=promised,
        statutory_limit=statutory,
        unit=unit,
        pauses=pauses,
    )


def pause(kind: str, start: str, end: str | None, granted: int | None = None) -> PauseSpan:
    return PauseSpan(kind, d(start), None if end is None else d(end), granted)


def read(calendar: WorkCalendar, clock: CaseClock, on: str) -> ClockReading:
    reading = read_clock(clock, d(on), calendar)
    assert reading is not None
    return reading


def test_spring_festival_2026_pushes_due_date_past_the_holiday(calendar: WorkCalendar) -> None:
    # A = Tue 2/10, 5 working days: 2/11 (1), 2/12 (2), 2/13 (3), Sat 2/14 make-up (4),
    # 2/15–2/23 off, 2/24 (5).
    reading = read(calendar, case("2026-02-10", 5), "2026-02-11")
    assert reading.promised == Deadline(limit=5, due=d("2026-02-24"), provisional=False)
    assert reading.counted_days == 1
    assert reading.remaining_days == 4
    assert reading.severity is None


def test_a_makeup_saturday_is_counted(calendar: WorkCalendar) -> None:
    # A = Thu 2/26, 2 working days: Fri 2/27 (1), Sat 2/28 make-up (2).
    # Completed Mon 3/2: Sun 3/1 is not counted, 3/2 is, so one day late.
    reading = read(calendar, case("2026-02-26", 2, completed="2026-03-02"), "2026-03-05")
    assert reading.promised.due == d("2026-02-28")
    assert reading.decision_date == d("2026-03-02")
    assert reading.counted_days == 3
    assert reading.days_late == 1
    assert reading.remaining_days is None
    assert reading.severity is Severity.YELLOW


def test_a_pause_covering_a_national_day_holiday_stops_only_its_working_days(
    calendar: WorkCalendar,
) -> None:
    # A = Mon 9/28, 5 working days, hearing 9/30–10/9.
    # Without the pause: 9/29 (1), 9/30 (2), 10/8 (3), 10/9 (4), Sat 10/10 make-up (5).
    # With it 9/30, 10/8 and 10/9 are not counted (10/1–10/7 were off anyway):
    # 9/29 (1), 10/10 (2), 10/12 (3), 10/13 (4), 10/14 (5).
    plain = case("2026-09-28", 5)
    paused = case("2026-09-28", 5, pauses=(pause("hearing", "2026-09-30", "2026-10-09"),))
    assert read(calendar, plain, "2026-09-29").promised.due == d("2026-10-10")
    reading = read(calendar, paused, "2026-10-13")
    assert reading.promised.due == d("2026-10-14")
    assert reading.counted_days == 4  # 9/29, 10/10, 10/12, 10/13
    assert reading.remaining_days == 1
    assert reading.severity is Severity.WARNING


def test_an_extension_adds_its_granted_days_to_both_limits(calendar: WorkCalendar) -> None:
    # A = Mon 3/2, promised 10 + 10 granted = 20: 3/3–3/6 (4), 3/9–3/13 (9),
    # 3/16–3/20 (14), 3/23–3/27 (19), 3/30 (20).
    # Statutory 20 + 10 = 30: 3/31 (21), 4/1–4/3 (24), 4/4–4/6 off, 4/7–4/10 (28),
    # 4/13 (29), 4/14 (30).
    extended = case(
        "2026-03-02", 10, statutory=20, pauses=(pause("extension", "2026-03-10", None, 10),)
    )
    reading = read(calendar, extended, "2026-03-20")
    assert reading.promised == Deadline(limit=20, due=d("2026-03-30"), provisional=False)
    assert reading.statutory == Deadline(limit=30, due=d("2026-04-14"), provisional=False)
    assert reading.red is reading.statutory
    assert reading.remaining_days == 6  # 3/23–3/27, 3/30
    assert reading.severity is None
    # The extension does not stop the clock: 3/10 itself is counted.
    assert reading.counted_days == 14


def test_an_immediate_case_warns_on_its_acceptance_day_and_is_yellow_the_next(
    calendar: WorkCalendar,
) -> None:
    # 即办件: limit 0, due = A = Thu 3/5. Red without statutory = 5th counted day:
    # 3/6 (1), 3/9 (2), 3/10 (3), 3/11 (4), 3/12 (5).
    immediate = case("2026-03-05", 0)
    on_day = read(calendar, immediate, "2026-03-05")
    assert on_day.promised.due == d("2026-03-05")
    assert on_day.remaining_days == 0
    assert on_day.severity is Severity.WARNING
    next_day = read(calendar, immediate, "2026-03-06")
    assert (next_day.severity, next_day.days_late) == (Severity.YELLOW, 1)
    assert next_day.red == Deadline(limit=5, due=d("2026-03-12"), provisional=False)


def test_natural_days_ignore_weekends_and_holidays(calendar: WorkCalendar) -> None:
    # A = 2/10, 10 natural days: due 2/20, in the middle of Spring Festival.
    natural = case("2026-02-10", 10, unit="N")
    reading = read(calendar, natural, "2026-02-18")
    assert reading.promised.due == d("2026-02-20")
    assert reading.counted_days == 8
    assert reading.remaining_days == 2
    assert reading.severity is Severity.WARNING
    # Red without statutory = 15 natural days = 2/25.
    assert reading.red.due == d("2026-02-25")


def test_a_running_pause_before_the_due_date_means_no_finding(calendar: WorkCalendar) -> None:
    # A = Mon 3/2, 5 days; 3/3 counted, then supplement notice from 3/4 still running.
    paused = case("2026-03-02", 5, pauses=(pause("supplement", "2026-03-04", None),))
    reading = read(calendar, paused, "2026-04-30")
    assert reading.promised.due is None
    assert reading.red.due is None
    assert reading.counted_days == 1
    assert (reading.remaining_days, reading.days_late) == (None, None)
    assert reading.severity is None
    assert reading.provisional is False


def test_a_pause_started_after_the_due_date_does_not_hide_the_delay(
    calendar: WorkCalendar,
) -> None:
    # A = Mon 3/2, 2 days: due Wed 3/4. Pause from Fri 3/6, running: only 3/5 counts late.
    late = case("2026-03-02", 2, pauses=(pause("testing", "2026-03-06", None),))
    reading = read(calendar, late, "2026-03-20")
    assert reading.promised.due == d("2026-03-04")
    assert (reading.days_late, reading.severity) == (1, Severity.YELLOW)


def test_completion_on_the_due_date_is_on_time(calendar: WorkCalendar) -> None:
    # Same dates as the Spring Festival case: due 2/24, completed 2/24.
    reading = read(calendar, case("2026-02-10", 5, completed="2026-02-24"), "2026-03-10")
    assert reading.decision_date == d("2026-02-24")
    assert reading.counted_days == 5
    assert (reading.remaining_days, reading.days_late, reading.severity) == (None, None, None)


@pytest.mark.parametrize(
    ("on", "remaining", "severity"),
    [
        # due 2/24; counted days after `on` through 2/24:
        ("2026-02-12", 3, None),  # 2/13, 2/14, 2/24
        ("2026-02-13", 2, Severity.WARNING),  # 2/14, 2/24
        ("2026-02-14", 1, Severity.WARNING),  # 2/24
        ("2026-02-20", 1, Severity.WARNING),  # 2/24 (still the holiday)
        ("2026-02-24", 0, Severity.WARNING),
        ("2026-02-25", None, Severity.YELLOW),
    ],
)
def test_warning_starts_at_two_remaining_days_not_three(
    calendar: WorkCalendar, on: str, remaining: int | None, severity: Severity | None
) -> None:
    reading = read(calendar, case("2026-02-10", 5), on)
    assert (reading.remaining_days, reading.severity) == (remaining, severity)


def test_the_warning_threshold_comes_from_the_policy(calendar: WorkCalendar) -> None:
    reading = read_clock(
        case("2026-02-10", 5), d("2026-02-12"), calendar, GradingPolicy(warning_days=3)
    )
    assert reading is not None
    assert reading.severity is Severity.WARNING


def test_yellow_then_red_at_the_statutory_due_date(calendar: WorkCalendar) -> None:
    # A = Mon 3/2, promised 5: 3/3–3/6 (4), 3/9 (5). Statutory 20: 3/10–3/13 (9),
    # 3/16–3/20 (14), 3/23–3/27 (19), 3/30 (20).
    clock = case("2026-03-02", 5, statutory=20)
    yellow = read(calendar, clock, "2026-03-10")
    assert (yellow.severity, yellow.days_late) == (Severity.YELLOW, 1)
    assert yellow.statutory == Deadline(limit=20, due=d("2026-03-30"), provisional=False)
    on_statutory_due = read(calendar, clock, "2026-03-30")
    assert (on_statutory_due.severity, on_statutory_due.days_late) == (Severity.YELLOW, 15)
    red = read(calendar, clock, "2026-03-31")
    assert (red.severity, red.days_late) == (Severity.RED, 16)


def test_red_five_counted_days_past_promised_without_a_statutory_limit(
    calendar: WorkCalendar,
) -> None:
    # A = Mon 3/2, promised 5: due 3/9. Red = 10th counted day: 3/10–3/13 (9), 3/16 (10).
    clock = case("2026-03-02", 5)
    weekend = read(calendar, clock, "2026-03-14")  # Saturday: 3/10–3/13 late
    assert (weekend.severity, weekend.days_late) == (Severity.YELLOW, 4)
    fifth = read(calendar, clock, "2026-03-16")
    assert fifth.red == Deadline(limit=10, due=d("2026-03-16"), provisional=False)
    assert fifth.statutory is None
    assert (fifth.severity, fifth.days_late) == (Severity.YELLOW, 5)
    sixth = read(calendar, clock, "2026-03-17")
    assert (sixth.severity, sixth.days_late) == (Severity.RED, 6)
    completed_late = read(calendar, case("2026-03-02", 5, completed="2026-03-17"), "2026-04-01")
    assert completed_late.severity is Severity.RED


def test_the_red_margin_comes_from_the_policy(calendar: WorkCalendar) -> None:
    reading = read_clock(
        case("2026-03-02", 5), d("2026-03-10"), calendar, GradingPolicy(red_days_past_promised=0)
    )
    assert reading is not None
    assert reading.severity is Severity.RED


def test_a_due_date_in_2027_is_provisional(calendar: WorkCalendar) -> None:
    # A = Mon 12/28, 5 days: 12/29 (1), 12/30 (2), 12/31 (3), then past coverage
    # Monday–Friday: Fri 2027-01-01 (4), Mon 1/4 (5).
    clock = case("2026-12-28", 5)
    reading = read(calendar, clock, "2026-12-31")
    assert reading.promised == Deadline(limit=5, due=d("2027-01-04"), provisional=True)
    assert (reading.remaining_days, reading.severity) == (2, Severity.WARNING)
    assert reading.provisional is True
    quiet = read(calendar, clock, "2026-12-29")  # 4 remaining: no finding, still provisional
    assert (quiet.severity, quiet.provisional) == (None, True)


def test_a_yellow_card_decided_in_2026_is_not_provisional_when_only_red_is(
    calendar: WorkCalendar,
) -> None:
    # A = Tue 12/1, promised 5: 12/2–12/4 (3), 12/7 (4), 12/8 (5). Statutory 30:
    # 12/9–12/11 (8), 12/14–18 (13), 12/21–25 (18), 12/28–31 (22), 1/1 (23),
    # 1/4–1/8 (28), 1/11 (29), 1/12 (30).
    reading = read(calendar, case("2026-12-01", 5, statutory=30), "2026-12-20")
    assert reading.statutory == Deadline(limit=30, due=d("2027-01-12"), provisional=True)
    assert (reading.severity, reading.provisional) == (Severity.YELLOW, False)


def test_natural_days_are_never_provisional(calendar: WorkCalendar) -> None:
    # A = 12/28, 10 natural days: due 2027-01-07.
    reading = read(calendar, case("2026-12-28", 10, unit="N"), "2027-01-06")
    assert reading.promised == Deadline(limit=10, due=d("2027-01-07"), provisional=False)
    assert (reading.remaining_days, reading.severity, reading.provisional) == (
        1,
        Severity.WARNING,
        False,
    )


def test_a_case_without_acceptance_has_no_clock(calendar: WorkCalendar) -> None:
    clock = CaseClock(None, None, 5, None, "W")
    assert read_clock(clock, d("2026-03-02"), calendar) is None


def test_events_after_the_evaluation_date_have_not_happened(calendar: WorkCalendar) -> None:
    # Acceptance later than `on`: no clock yet.
    assert read_clock(case("2026-03-10", 5), d("2026-03-09"), calendar) is None
    # Completion later than `on`: still open. A = 3/2, due 3/9, on 3/9: remaining 0.
    open_case = read(calendar, case("2026-03-02", 5, completed="2026-03-20"), "2026-03-09")
    assert (open_case.decision_date, open_case.severity) == (d("2026-03-09"), Severity.WARNING)
    # A pause that starts later is ignored; one that ends later is still running.
    later = (pause("hearing", "2026-03-12", "2026-03-20"),)
    assert read(calendar, case("2026-03-02", 5, pauses=later), "2026-03-05").promised.due == d(
        "2026-03-09"
    )
    running = (pause("hearing", "2026-03-04", "2026-03-20"),)
    assert read(calendar, case("2026-03-02", 5, pauses=running), "2026-03-10").promised.due is None


def test_every_kind_but_extension_stops_the_clock(calendar: WorkCalendar) -> None:
    # A = Mon 3/2, 5 days, a pause on Wed 3/4 only: 3/3, 3/5, 3/6, 3/9, 3/10.
    kinds = {"hearing", "expert_review", "testing", "site_survey", "supplement", "other"}
    assert kinds == STOPPING_KINDS
    for kind in STOPPING_KINDS:
        clock = case("2026-03-02", 5, pauses=(pause(kind, "2026-03-04", "2026-03-04"),))
        assert read(calendar, clock, "2026-03-05").promised.due == d("2026-03-10"), kind


def test_severity_ranks_order_the_grades() -> None:
    assert [s.rank for s in Severity] == [1, 2, 3]
    assert str(Severity.RED) == "red"


def test_a_negative_grading_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^warning_days must be >= 0, got -1$"):
        GradingPolicy(warning_days=-1)
    with pytest.raises(ValueError, match=r"^red_days_past_promised must be >= 0, got -2$"):
        GradingPolicy(red_days_past_promised=-2)


def test_negative_limits_and_unknown_units_are_refused() -> None:
    accepted = d("2026-03-02")
    with pytest.raises(ValueError, match=r"^promised_limit must be >= 0, got -1$"):
        CaseClock(accepted, None, -1, None, "W")
    with pytest.raises(ValueError, match=r"^statutory_limit must be >= 0, got -3$"):
        CaseClock(accepted, None, 1, -3, "W")
    with pytest.raises(ValueError, match=r"""^unit must be "W" or "N", got 'X'$"""):
        CaseClock(accepted, None, 1, None, "X")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^granted_days must be >= 0, got -5$"):
        pause("extension", "2026-03-02", None, -5)
