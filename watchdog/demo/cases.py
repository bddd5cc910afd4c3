"""Cases with their steps, special procedures and fees, one application day at a time.

Events later than the end date are dropped after planning, which is how cases near the
end stay open, unaccepted or paused, exactly as a live exchange database shows them.
"""

from __future__ import annotations

import random
from typing import Any

from watchdog.demo.county import (
    COUNTY_CODE,
    DEMO_FEE_CATALOGUE,
    DEPARTMENTS,
    MATTERS,
    UNKNOWN_FEES,
    FeeItem,
)
from watchdog.demo.days import (
    DAY,
    TIMES,
    Days,
    earlier_same_half_day,
    later_same_day,
    office_second,
)
from watchdog.demo.people import Enterprise, masked_id, staff_names
from watchdog.demo.plan import Event, MatterInfo, Plan

Row = tuple[Any, ...]
_FEES = {f.code: f for f in DEMO_FEE_CATALOGUE}
_FEE_KIND = {
    COUNTY_CODE + "004-QR-001": "registration",
    COUNTY_CODE + "004-QR-002": "registration",
    COUNTY_CODE + "002-XK-005": "road",
    COUNTY_CODE + "002-XK-001": "air_defence",
    COUNTY_CODE + "011-XK-005": "fishery",
    COUNTY_CODE + "001-XK-005": "device",
    COUNTY_CODE + "004-GG-005": "query",  # free, but a few are charged a registration fee
}


class Sink:
    """Row buffers, emptied by the caller whenever one is full."""

    def __init__(self) -> None:
        self.cases: list[Row] = []
        self.steps: list[Row] = []
        self.pauses: list[Row] = []
        self.fees: list[Row] = []


def _staff(rng: random.Random) -> dict[str, dict[str, list[str]]]:
    """Per department: window clerks, 承办人, 审核人, 批准人 (names, or ids for two systems)."""
    taken: set[str] = set()
    out: dict[str, dict[str, list[str]]] = {}
    sizes = {"window": 4, "review": 6, "verify": 2, "decide": 2}
    for i, d in enumerate(DEPARTMENTS):
        if d.code.endswith(("005", "011")):  # this vendor's system stores staff ids
            prefix = "NYJ" if d.code.endswith("011") else "JTJ"
            ids = iter(rng.sample(range(100 + i * 300, 400 + i * 300), sum(sizes.values())))
            out[d.code] = {
                k: [f"{prefix}{next(ids):04d}" for _ in range(n)] for k, n in sizes.items()
            }
        else:
            out[d.code] = {k: staff_names(rng, n, taken) for k, n in sizes.items()}
    return out


_STEP_SUFFIX = [f"-{i:02d}" for i in range(100)]


def _cents(c: int) -> str:
    return f"{c // 100}.{c % 100:02d}"


def _find(events: list[Event], name: str) -> Event | None:
    return next((e for e in events if e[0] == name), None)


class CaseMaker:
    """Generates the cases of each application day and appends their rows to a `Sink`."""

    def __init__(self, rng: random.Random, days: Days, sink: Sink, firms: list[Enterprise]):
        self.rng, self.days, self.sink, self.firms = rng, days, sink, firms
        staff = _staff(rng)
        names = {d.code: d.name for d in DEPARTMENTS}
        self.matters = [
            MatterInfo(m, names[m.dept_code], staff[m.dept_code], _FEE_KIND.get(m.code))
            for m in MATTERS
        ]
        # drawing uniformly from this table gives the matter mix by weight
        self.mix = [self.matters[i] for i, m in enumerate(MATTERS) for _ in range(m.weight)]
        self.seq: dict[int, int] = {}

    def day(self, day: int, count: int) -> None:
        """`count` applications on `day`, numbered per year in order of arrival."""
        rng, rand, mix = self.rng, self.rng.random, self.mix
        working = self.days.work[day]
        apps = []
        for _ in range(count):
            walk_in = working and rand() < 0.85  # else online (网上申报), any hour 07–24
            second = office_second(rng) if walk_in else 25_200 + int(rand() * 61_199)
            apps.append((second, walk_in, mix[int(rand() * len(mix))]))
        apps.sort(key=lambda a: a[0])
        year = self.days.dates[day].year
        n = self.seq.get(year, 0)
        for second, walk_in, m in apps:
            n += 1
            self.case(f"{COUNTY_CODE}-{year}-{n:07d}", m, day, second, walk_in)
        self.seq[year] = n

    def _accept(self, day: int, second: int, walk_in: bool) -> int | None:
        rng, days = self.rng, self.days
        r = rng.random()
        if r < 0.003:
            return None  # waiting for pre-examination, never accepted
        if r > 0.97:  # 压件: accepted 3–8 working days late
            d = days.next_working(day + 1, 2 + int(rng.random() * 6))
        elif walk_in and r < 0.80:
            return day * DAY + later_same_day(rng, second)
        elif not walk_in and days.work[day] and second < 15 * 3600 and r < 0.4:
            return day * DAY + later_same_day(rng, max(second, 30_600))
        else:
            d = days.next_working(day + 1)
        return d * DAY + office_second(rng)

    def _applicant(self, m: MatterInfo) -> str | None:
        rand = self.rng.random
        if rand() < 0.015:
            return None  # the source never filled it in
        if rand() < m.person:
            return masked_id(self.rng)
        return self.firms[int(rand() * len(self.firms))].code

    def case(self, pid: str, m: MatterInfo, day: int, second: int, walk_in: bool) -> None:
        days, sink, fmt, end = self.days, self.sink, self.days.fmt, self.days.end_instant
        applied = day * DAY + second
        accepted = self._accept(day, second, walk_in)
        head = (pid, m.code, m.name, m.dept, m.dept_name, self._applicant(m), fmt(applied))
        if accepted is None or accepted > end:
            sink.cases.append((*head, None, m.limit, m.unit, m.statutory, None, None, head[-1]))
            return
        plan = Plan(self.rng, m, accepted)
        events = plan.timeline(self.rng, days)
        if plan.fault is not None:
            self._inject(plan.fault, events, applied, accepted)
        steps = [e for e in events if e[1] <= end]
        done = next((e[1] for e in reversed(steps) if e[0] == "办结"), None)
        accepted_at = fmt(accepted)
        done_at = None if done is None else fmt(done)
        result = None if done is None else plan.result
        sink.cases.append(
            (
                *head,
                accepted_at,
                m.limit,
                m.unit,
                m.statutory,
                done_at,
                result,
                done_at or accepted_at,
            )
        )
        append, text, times = sink.steps.append, days.text, TIMES
        for i, (name, t, who, res) in enumerate(steps, 1):
            ts = text[t // DAY] + times[t % DAY]
            append((pid + _STEP_SUFFIX[i], pid, name, who, ts, res, ts))
        for i, (kind, start, planned_stop) in enumerate(plan.timed, 1):
            if start > end:
                break
            stop = done if kind == "A" else planned_stop  # an extension lasts until decided
            started = fmt(start)
            stopped = None if stop is None or stop > end else fmt(stop)
            granted = 10 if kind == "A" else None
            sink.pauses.append(
                (f"{pid}-T{i}", pid, kind, started, stopped, granted, stopped or started)
            )
        if done is not None and m.fee is not None:
            before = max(e[1] for e in steps if e[0] != "办结" and e[1] <= done)
            self._fees(pid, m, plan.result, done, before)

    def _inject(self, fault: str, events: list[Event], applied: int, accepted: int) -> None:
        """Apply a procedure fault (repeated 补正告知 is planned as pauses instead)."""
        review, decide = _find(events, "承办"), _find(events, "批准")
        if review is None or decide is None:
            return
        rand = self.rng.random
        if fault == "missing":  # 批准 without 承办 (or, for major matters, without 审核)
            verify = _find(events, "审核")
            events.remove(verify if verify is not None and rand() < 0.7 else review)
        elif fault == "order" and review[1] != decide[1]:  # 批准 finished before 承办
            review[1], decide[1] = decide[1], review[1]
        elif fault == "before" and accepted - applied >= 120:  # 承办 before 受理
            review[1] = accepted - 60 - int(rand() * min(1740, accepted - applied - 61))
        elif fault == "same":  # one person reviews and decides
            decide[2] = review[2]

    def _fees(self, pid: str, m: MatterInfo, result: str, done: int, before: int) -> None:
        rand = self.rng.random
        if result == "3" or (result == "2" and rand() > 0.3):
            return  # refused cases pay nothing, except a few (unlawfully) charged anyway
        second = done % DAY
        room = min(900, done - before, second - earlier_same_half_day(second))
        t = done - int(rand() * max(room, 0))
        items: list[tuple[FeeItem | tuple[str, str], int]] = []
        if m.fee == "registration":
            home = rand() < m.person
            items.append((_FEES["FS-001" if home else "FS-002"], 8_000 if home else 55_000))
            if rand() < 0.3:
                items.append((_FEES["FS-003"], 1_000))
        elif m.fee == "road":
            items.append((_FEES["FS-005"], 100 * (500 + int(rand() * 29_500))))
        elif m.fee == "air_defence" and rand() < 0.4:
            items.append((_FEES["FS-006"], 100 * (20_000 + int(rand() * 260_000))))
        elif m.fee == "fishery":  # policy: the lower bound; a few are charged more
            above = rand() < 0.2
            items.append((_FEES["FS-004"], 100 * (200 + int(rand() * 2_800) * above)))
        elif m.fee == "query" and rand() < 0.04:  # a fee of another matter (not applicable)
            items.append((_FEES["FS-001"], 8_000))
        elif m.fee == "device":
            item = _FEES["FS-007"]
            in_force = item.valid_to is None or self.days.dates[t // DAY] <= item.valid_to
            if in_force or rand() < 0.1:  # a few go on charging after abolition
                items.append((item, 30_000))
        if not items:
            return
        v = rand()
        if v < 0.03:  # an extra charge no catalogue lists
            code, name, cents = UNKNOWN_FEES[int(rand() * len(UNKNOWN_FEES))]
            items.append(((code, name), cents))
        elif v < 0.06:  # above the standard
            first = items[0][0]
            if isinstance(first, FeeItem):
                items[0] = (first, int(first.max_amount * 100) * (110 + int(rand() * 50)) // 100)
        ts = self.days.fmt(t)
        for i, (entry, amount) in enumerate(items, 1):
            code, name = (entry.code, entry.name) if isinstance(entry, FeeItem) else entry
            self.sink.fees.append((f"{pid}-F{i}", pid, code, name, _cents(amount), ts, ts))
