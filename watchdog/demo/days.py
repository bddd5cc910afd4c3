"""Day arithmetic for the generator: days are integer indexes from the start date.

An instant is `day * 86400 + second_of_day` in Asia/Shanghai local time; formatting
goes through precomputed strings, which keeps a million cases fast.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import chinese_calendar

DAY = 86_400
_MORNING = 8 * 3600 + 1800  # 08:30
_AFTERNOON = 13 * 3600 + 1800  # 13:30
_MORNING_LEN = 12 * 3600 - _MORNING  # until 12:00
_OFFICE_LEN = _MORNING_LEN + (17 * 3600 + 1800 - _AFTERNOON)  # until 17:30
_LUNCH = (12 * 3600, _AFTERNOON)

TIMES = tuple(f" {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY))
_OFFICIAL_YEARS = frozenset(d.year for d in chinese_calendar.holidays)


def is_working_day(day: date) -> bool:
    """The State Council calendar where chinese_calendar covers it, else Monday–Friday."""
    if day.year in _OFFICIAL_YEARS:
        return bool(chinese_calendar.is_workday(day))
    return day.weekday() < 5


class Days:
    """Working-day tables from `start` through `end` plus a margin for planning."""

    def __init__(self, start: date, end: date, margin: int = 1200) -> None:
        self.last = (end - start).days  # index of the end date
        self.end_instant = self.last * DAY + DAY - 1
        n = self.last + 1 + margin
        dates = [start + timedelta(days=i) for i in range(n)]
        self.dates = dates
        self.work = [is_working_day(d) for d in dates]
        self.text = [d.isoformat() for d in dates]
        self.wd = [i for i in range(n) if self.work[i]]
        # wpos[i]: position in wd of the first working day >= i; prev[i]: last one <= i
        self.wpos = [0] * n
        self.prev = [-1] * n
        pos, last_work = len(self.wd), -1
        for i in range(n - 1, -1, -1):
            if self.work[i]:
                pos -= 1
            self.wpos[i] = pos
        for i in range(n):
            if self.work[i]:
                last_work = i
            self.prev[i] = last_work

    def fmt(self, instant: int) -> str:
        """'YYYY-MM-DD HH:MM:SS' of an instant."""
        day, second = divmod(instant, DAY)
        return self.text[day] + TIMES[second]

    def next_working(self, day: int, after: int = 0) -> int:
        """The working day `after` working days after the first working day >= `day`."""
        return self.wd[self.wpos[day] + after]


def office_second(rng: random.Random) -> int:
    """A second of the day in office hours (08:30–12:00, 13:30–17:30)."""
    u = int(rng.random() * _OFFICE_LEN)
    return _MORNING + u if u < _MORNING_LEN else _AFTERNOON - _MORNING_LEN + u


def later_same_day(rng: random.Random, second: int) -> int:
    """A second 1–30 minutes after `second`, skipping the lunch break."""
    s = second + 60 + int(rng.random() * 1740)
    if _LUNCH[0] <= s < _LUNCH[1]:
        s += _LUNCH[1] - _LUNCH[0]
    return min(s, DAY - 1)


def earlier_same_half_day(second: int) -> int:
    """The start of the office half-day that contains `second` (or `second` itself)."""
    if second >= _AFTERNOON:
        return _AFTERNOON
    return second if second < _MORNING else _MORNING
