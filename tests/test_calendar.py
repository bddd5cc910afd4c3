"""The working-day calendar: official 2026 data, coverage, overrides and their errors."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import pytest

from watchdog.calendar import CalendarError, CalendarOverrides, WorkCalendar, load_overrides

# 国务院办公厅关于2026年部分节假日安排的通知 (as quoted in docs/domain.md)
OFF_2026 = [
    ("2026-01-01", "2026-01-03"),
    ("2026-02-15", "2026-02-23"),
    ("2026-04-04", "2026-04-06"),
    ("2026-05-01", "2026-05-05"),
    ("2026-06-19", "2026-06-21"),
    ("2026-09-25", "2026-09-27"),
    ("2026-10-01", "2026-10-07"),
]
MAKEUP_2026 = ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]

EXAMPLE_2027 = """
[years.2027]
holidays = ["2027-01-01", "2027-02-06..2027-02-12"]
makeup_workdays = ["2027-02-14"]
"""


def days(first: str, last: str) -> list[date]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def calendar() -> WorkCalendar:
    return WorkCalendar()


def test_every_2026_statutory_holiday_is_a_day_off(calendar: WorkCalendar) -> None:
    for first, last in OFF_2026:
        for day in days(first, last):
            assert not calendar.is_workday(day), day


def test_every_2026_makeup_weekend_day_is_a_working_day(calendar: WorkCalendar) -> None:
    for text in MAKEUP_2026:
        day = date.fromisoformat(text)
        assert day.weekday() >= 5
        assert calendar.is_workday(day), day


def test_2026_has_exactly_the_published_days_off_and_makeup_days(calendar: WorkCalendar) -> None:
    off = {day for first, last in OFF_2026 for day in days(first, last)}
    makeup = {date.fromisoformat(text) for text in MAKEUP_2026}
    for day in days("2026-01-01", "2026-12-31"):
        expected = day in makeup or (day.weekday() < 5 and day not in off)
        assert calendar.is_workday(day) is expected, day


def test_coverage_ends_on_the_last_day_of_2026(calendar: WorkCalendar) -> None:
    assert calendar.coverage_end == date(2026, 12, 31)
    assert calendar.is_covered(date(2026, 12, 31))
    assert not calendar.is_covered(date(2027, 1, 1))
    assert calendar.is_covered(date(2004, 1, 1))
    assert not calendar.is_covered(date(2003, 12, 31))


def test_spring_festival_2026_leaves_five_working_days_between_the_13th_and_27th(
    calendar: WorkCalendar,
) -> None:
    # 2/14 (make-up Saturday) + 2/24, 2/25, 2/26, 2/27; 2/15–2/23 are off.
    assert calendar.count_workdays(date(2026, 2, 13), date(2026, 2, 27)) == 5
    assert calendar.nth_workday_after(date(2026, 2, 13), 2) == date(2026, 2, 24)


def test_2027_weekdays_count_as_workdays_with_exactly_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calendar = WorkCalendar()
    with caplog.at_level(logging.WARNING, logger="watchdog.calendar"):
        assert calendar.is_workday(date(2027, 1, 4))  # a Monday
        assert not calendar.is_workday(date(2027, 1, 9))  # a Saturday
        assert calendar.is_workday(date(2027, 1, 1))  # New Year, but nobody has said so yet
        assert calendar.count_workdays(date(2027, 1, 1), date(2027, 1, 31)) == 20
        assert calendar.nth_workday_after(date(2027, 3, 1), 5) == date(2027, 3, 8)
    assert [record.getMessage() for record in caplog.records] == [
        "working-day calendar has no holiday notice for 2027-01-04 (covered 2004-01-01 to "
        "2026-12-31): counting Monday-Friday as working days; deadlines there are provisional "
        "until the year is added to the calendar override file"
    ]


def test_counting_into_2027_warns_with_the_first_uncovered_date(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calendar = WorkCalendar()
    with caplog.at_level(logging.WARNING, logger="watchdog.calendar"):
        calendar.count_workdays(date(2026, 12, 1), date(2027, 2, 1))
        calendar.count_workdays(date(2027, 5, 1), date(2027, 6, 1))
    assert len(caplog.records) == 1
    assert "no holiday notice for 2027-01-01 " in caplog.records[0].getMessage()


def test_counting_inside_coverage_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    calendar = WorkCalendar()
    with caplog.at_level(logging.WARNING, logger="watchdog.calendar"):
        calendar.count_workdays(date(2004, 1, 1), date(2026, 12, 31))
        calendar.nth_workday_after(date(2026, 12, 1), 10)
        calendar.is_workday(date(2026, 6, 1))
    assert caplog.records == []


def test_dates_long_before_and_after_coverage_count_monday_to_friday(
    calendar: WorkCalendar,
) -> None:
    # 1999-01-04 and 2999-01-05 are Mondays; one week holds five working days.
    assert calendar.count_workdays(date(1999, 1, 3), date(1999, 1, 10)) == 5
    assert calendar.nth_workday_after(date(1999, 1, 3), 6) == date(1999, 1, 11)
    assert calendar.count_workdays(date(2999, 1, 4), date(2999, 1, 11)) == 5
    assert calendar.nth_workday_after(date(2999, 1, 4), 5) == date(2999, 1, 11)
    assert calendar.is_workday(date(1, 1, 1))  # a Monday
    assert calendar.nth_workday_after(date(1, 1, 1), 1) == date(1, 1, 2)


def test_counting_across_the_start_of_coverage_joins_both_rules(calendar: WorkCalendar) -> None:
    # 2003-12-29..31 are Mon–Wed (3 days); 2004-01-01 is New Year; 2004-01-02 is a Friday.
    assert calendar.count_workdays(date(2003, 12, 28), date(2004, 1, 2)) == 4
    assert calendar.nth_workday_after(date(2003, 12, 28), 4) == date(2004, 1, 2)


def test_count_is_zero_when_the_end_is_not_after_the_start(calendar: WorkCalendar) -> None:
    assert calendar.count_workdays(date(2026, 3, 2), date(2026, 3, 2)) == 0
    assert calendar.count_workdays(date(2026, 3, 9), date(2026, 3, 2)) == 0


def test_nth_workday_needs_n_of_at_least_one(calendar: WorkCalendar) -> None:
    with pytest.raises(ValueError, match=r"^n must be at least 1, got 0$"):
        calendar.nth_workday_after(date(2026, 3, 2), 0)


@pytest.mark.parametrize(
    "start",
    [date(2001, 12, 20), date(2003, 12, 31), date(2026, 1, 1), date(2026, 2, 13),
     date(2026, 9, 30), date(2026, 12, 25), date(2027, 6, 5)],
)  # fmt: skip
def test_nth_and_count_are_inverse_and_land_on_working_days(
    calendar: WorkCalendar, start: date
) -> None:
    previous = start
    for n in range(1, 300):
        day = calendar.nth_workday_after(start, n)
        assert day > previous
        assert calendar.is_workday(day)
        assert calendar.count_workdays(start, day) == n
        assert calendar.count_workdays(start, day - timedelta(days=1)) == n - 1
        previous = day


def test_count_matches_a_day_by_day_count(calendar: WorkCalendar) -> None:
    start = date(2025, 11, 1)
    running = 0
    for day in days("2025-11-02", "2027-02-28"):
        running += calendar.is_workday(day)
        assert calendar.count_workdays(start, day) == running, day


def test_override_file_extends_coverage_to_2027(tmp_path: Path) -> None:
    overrides = load_overrides(write(tmp_path, EXAMPLE_2027))
    assert overrides == CalendarOverrides(
        holidays=frozenset([date(2027, 1, 1), *days("2027-02-06", "2027-02-12")]),
        makeup_workdays=frozenset([date(2027, 2, 14)]),
        years=frozenset([2027]),
    )
    calendar = WorkCalendar(overrides)
    assert calendar.coverage_end == date(2027, 12, 31)
    assert calendar.is_covered(date(2027, 7, 1))
    assert not calendar.is_workday(date(2027, 1, 1))
    assert not calendar.is_workday(date(2027, 2, 8))  # a Monday in the declared holiday
    assert calendar.is_workday(date(2027, 2, 14))  # the declared make-up Sunday
    assert not calendar.is_workday(date(2027, 2, 13))  # an ordinary Saturday
    # 2/5 (Fri) then 2/13 off, 2/14 on, 2/15 on: the 2nd working day after 2/4 is 2/14.
    assert calendar.nth_workday_after(date(2027, 2, 4), 2) == date(2027, 2, 14)
    assert calendar.count_workdays(date(2027, 2, 4), date(2027, 2, 15)) == 3


def test_the_shipped_example_file_loads(calendar: WorkCalendar) -> None:
    example = Path(__file__).resolve().parent.parent / "calendar.example.toml"
    assert WorkCalendar(load_overrides(example)).coverage_end == date(2027, 12, 31)


def test_override_for_a_covered_year_changes_only_the_listed_dates(tmp_path: Path) -> None:
    path = write(tmp_path, '[years.2026]\nholidays = ["2026-12-31"]\n')
    calendar = WorkCalendar(load_overrides(path))
    assert not calendar.is_workday(date(2026, 12, 31))
    assert calendar.is_workday(date(2026, 12, 30))
    assert calendar.is_workday(date(2026, 2, 14))  # official make-up day untouched
    assert not calendar.is_workday(date(2026, 2, 16))  # official holiday untouched
    assert calendar.coverage_end == date(2026, 12, 31)


def test_a_year_after_a_gap_does_not_extend_coverage_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, '[years.2028]\nholidays = ["2028-01-03"]\n')
    with caplog.at_level(logging.WARNING, logger="watchdog.calendar"):
        calendar = WorkCalendar(load_overrides(path))
    assert calendar.coverage_end == date(2026, 12, 31)
    assert calendar.is_workday(date(2028, 1, 3))  # ignored: Monday–Friday applies
    assert [record.getMessage() for record in caplog.records][:1] == [
        "calendar overrides declare 2028 but not every year in between; coverage ends "
        "2026-12-31 and those years are ignored until the gap is filled"
    ]


def test_bare_toml_dates_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "[years.2027]\nholidays = [2027-01-01]\n")
    assert load_overrides(path).holidays == frozenset([date(2027, 1, 1)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[years.2027]\nholidays = ["2027-01-01", "2027-02-30"]\n',
            'calendar.toml: years.2027.holidays[1]: expected a date like "2027-02-06" or a '
            'range "2027-02-06..2027-02-12", got "2027-02-30"',
        ),
        (
            '[years.2027]\nholidays = ["20270101"]\n',
            'calendar.toml: years.2027.holidays[0]: expected a date like "2027-02-06" or a '
            'range "2027-02-06..2027-02-12", got "20270101"',
        ),
        (
            "[years.2027]\nholidays = [1]\n",
            'calendar.toml: years.2027.holidays[0]: expected a date like "2027-02-06" or a '
            'range "2027-02-06..2027-02-12", got 1',
        ),
        (
            '[years.2027]\nholidays = ["2026-12-31"]\n',
            'calendar.toml: years.2027.holidays[0]: "2026-12-31" is not in year 2027',
        ),
        (
            '[years.2027]\nholidays = ["2027-12-30..2028-01-02"]\n',
            'calendar.toml: years.2027.holidays[0]: "2027-12-30..2028-01-02" is not in year 2027',
        ),
        (
            '[years.2027]\nholidays = ["2027-02-12..2027-02-06"]\n',
            "calendar.toml: years.2027.holidays[0]: range ends before it starts, "
            'got "2027-02-12..2027-02-06"',
        ),
        (
            '[years.2027]\nholidays = ["2027-02-06..2027-02-12"]\n'
            'makeup_workdays = ["2027-02-07"]\n',
            'calendar.toml: years.2027.makeup_workdays[0]: "2027-02-07" is also listed in '
            "years.2027.holidays",
        ),
        (
            '[years.2027]\nholidays = []\nmakeup_workdays = ["2027-02-15"]\n',
            "calendar.toml: years.2027.makeup_workdays[0]: a make-up working day must be a "
            'Saturday or Sunday, got "2027-02-15" (Monday)',
        ),
        (
            '[years.2027]\nholidays = "2027-01-01"\n',
            "calendar.toml: years.2027.holidays: expected a list of dates, got '2027-01-01'",
        ),
        (
            "[years.2027]\nmakeup_workdays = []\n",
            "calendar.toml: years.2027: holidays is required for a year the official data "
            "does not cover",
        ),
        (
            '[years.2027]\nholidays = []\nholiday = ["2027-01-01"]\n',
            "calendar.toml: years.2027.holiday: unknown key (expected holidays, makeup_workdays)",
        ),
        (
            '[year.2027]\nholidays = ["2027-01-01"]\n',
            "calendar.toml: year: unknown key (expected years)",
        ),
        (
            '[years.next]\nholidays = ["2027-01-01"]\n',
            'calendar.toml: years.next: expected a year like 2027, got "next"',
        ),
        (
            "[years]\n2027 = 1\n",
            "calendar.toml: years.2027: expected a table with holidays and makeup_workdays",
        ),
        (
            "years = 2027\n",
            "calendar.toml: years: expected a table like [years.2027], got 2027",
        ),
        (
            '[years.2027]\nholidays = ["2027-01-01"\nmakeup_workdays = []\n',
            "calendar.toml: line 3, column 1: invalid TOML: Unclosed array",
        ),
    ],
)
def test_each_problem_is_reported_with_file_key_and_value(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(CalendarError) as caught:
        load_overrides(write(tmp_path, text))
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path) -> None:
    text = (
        '[years.2027]\nholidays = ["2027-13-01", "2027-01-01"]\nmakeup_workdays = ["2027-01-01"]\n'
    )
    with pytest.raises(CalendarError) as caught:
        load_overrides(write(tmp_path, text))
    assert caught.value.problems == [
        'calendar.toml: years.2027.holidays[0]: expected a date like "2027-02-06" or a range '
        '"2027-02-06..2027-02-12", got "2027-13-01"',
        "calendar.toml: years.2027.makeup_workdays[0]: a make-up working day must be a "
        'Saturday or Sunday, got "2027-01-01" (Friday)',
    ]


def test_a_missing_file_is_named_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(CalendarError) as caught:
        load_overrides(path)
    assert str(caught.value) == f"{path}: file not found"
