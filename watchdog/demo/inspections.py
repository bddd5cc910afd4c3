"""涉企检查: inspections of the county's enterprises by its departments.

Each enterprise gets a schedule of ordinary inspections (双随机, 日常检查, 联合检查) at
least 31 days apart, as a coordinated county plans them; complaints and follow-ups come
on top (exempt from the repeat rule), and a small share of inspections is followed by a
second, uncoordinated one within 30 days (the repeats the watchdog should find).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from watchdog.demo.county import COUNTY_CODE
from watchdog.demo.days import DAY, Days, later_same_day, office_second
from watchdog.demo.people import Enterprise

Row = tuple[Any, ...]
_ALL_INSPECTORS = tuple(COUNTY_CODE + d for d in ("001", "003", "006", "012", "008", "002"))


class Inspections:
    """Streams the inspection rows of every enterprise."""

    def __init__(self, rng: random.Random, days: Days, firms: list[Enterprise]) -> None:
        self.rng, self.days, self.firms = rng, days, firms
        self.ids: dict[tuple[str, int], int] = {}
        self.groups = 0

    def rows(self, target: int) -> Iterator[Row]:
        """About `target` inspections in all, enterprise by enterprise."""
        if target <= 0:
            return
        rand = self.rng.random
        mean = target / max(1, len(self.firms))
        for firm in self.firms:
            risk = 1.6 if firm.sector in ("food", "chem", "medical") else 0.8
            count = int(rand() * 2 * mean * risk * 0.8 + 0.5)
            yield from self._firm(firm, count)

    def _firm(self, firm: Enterprise, count: int) -> Iterator[Row]:
        rand, days = self.rng.random, self.days
        last_day = days.last
        span = last_day + 1
        planned = sorted(int(rand() * span) for _ in range(count))
        prev = -10_000
        for drawn in planned:
            d = days.next_working(max(drawn, prev + 31 + int(rand() * 10)))
            if d > last_day:
                break
            prev = d
            yield from self._visit(firm, d)
        if rand() < 0.12:  # a complaint (投诉举报) any time
            d = days.next_working(int(rand() * span))
            if d <= last_day:
                yield self._row(firm, self._dept(firm), d, "投诉举报", None)

    def _visit(self, firm: Enterprise, day: int) -> Iterator[Row]:
        rand, days = self.rng.random, self.days
        r = rand()
        dept = self._dept(firm)
        if r < 0.08 and len(firm.inspectors) > 1:  # 联合检查 by 2–3 departments
            size = min(len(firm.inspectors), 2 + (rand() < 0.3))
            self.groups += 1
            group = f"LH{COUNTY_CODE}{days.dates[day]:%Y%m}{self.groups:05d}"
            for dept in self.rng.sample(firm.inspectors, size):
                yield self._row(firm, dept, day, "联合检查", group)
            return
        kind = "双随机" if r < 0.6 else "日常检查"
        yield self._row(firm, dept, day, kind, None)
        if rand() < 0.1:  # 复查 of what was found, by the same department
            follow = days.next_working(day + 7 + int(rand() * 20))
            if follow <= days.last:
                yield self._row(firm, dept, follow, "复查", None)
        if rand() < 0.05:  # an uncoordinated second inspection within 30 days
            again = day + 1 + int(rand() * 29)
            again = days.prev[again] if days.prev[again] > day else days.next_working(again)
            if again - day <= 30 and again <= days.last:
                other = self._dept(firm)
                yield self._row(firm, other, again, "日常检查" if rand() < 0.5 else "双随机", None)

    def _dept(self, firm: Enterprise) -> str:
        rand = self.rng.random
        pool = firm.inspectors if rand() < 0.85 else _ALL_INSPECTORS
        return pool[int(rand() * len(pool))]

    def _row(self, firm: Enterprise, dept: str, day: int, kind: str, group: str | None) -> Row:
        key = (dept, day)
        n = self.ids.get(key, 0) + 1
        self.ids[key] = n
        ident = f"JC{dept}{self.days.dates[day]:%Y%m%d}{n:04d}"
        second = office_second(self.rng)
        if group is not None:  # together: the same morning or afternoon
            second = later_same_day(self.rng, 9 * 3600 if second < 12 * 3600 else 14 * 3600)
        at = self.days.fmt(day * DAY + second)
        return (ident, firm.code, firm.name, dept, at, kind, group, at)
