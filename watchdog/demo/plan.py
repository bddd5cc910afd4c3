"""The legal-clock plan of one accepted case and the timeline of events it leads to.

A case is planned in "counted days" after acceptance (working days, or natural days for
unit Z): the completion offset is drawn against the promised and statutory limits, and
each stopping pause shifts every later event by its length, so the watchdog's counting
sees exactly the lateness that was planned. Extensions add 10 days without shifting.
"""

from __future__ import annotations

import random
from typing import Any

from watchdog.demo.county import Matter
from watchdog.demo.days import DAY, Days, later_same_day, office_second

FAULTS = ("missing", "order", "before", "same", "resupplement")
Event = list[Any]  # [node name, instant, handler, result]
Pause = tuple[int, int | None, str]  # (counted offset of its first day, length or None, kind)


class MatterInfo:
    """A matter with everything the per-case loop needs at hand."""

    __slots__ = (
        "code", "decided", "dept", "dept_name", "fee", "immediate", "klass", "limit",
        "major", "name", "natural", "person", "review", "site", "statutory", "steps",
        "unit", "window",
    )  # fmt: skip

    def __init__(self, m: Matter, dept_name: str, staff: dict[str, list[str]], fee: str | None):
        self.code, self.name, self.dept, self.dept_name = m.code, m.name, m.dept_code, dept_name
        self.limit, self.statutory, self.unit = m.promised_limit, m.statutory_limit, m.unit
        self.klass, self.site, self.person = m.klass, m.site_inspection, m.person_share
        self.fee = fee
        self.natural = m.unit == "Z"
        self.immediate, self.major = m.klass == "immediate", m.klass == "major"
        self.window, self.review = staff["window"], staff["review"]
        names: tuple[str, ...] = ()
        if not self.immediate:
            names = ("承办", "现场勘验") if self.site else ("承办",)
            names += ("审核", "批准") if self.major else ("批准",)
        role = {"承办": "review", "现场勘验": "review", "审核": "verify", "批准": "decide"}
        opinion = {"承办": "通过", "现场勘验": "符合要求", "审核": "通过", "批准": ""}
        self.steps = tuple((n, staff[role[n]], opinion[n]) for n in names)
        if "-XK-" in m.code:  # a licence (许可) is granted or refused; other matters agreed to
            self.decided = {"1": "准予许可", "2": "不予许可", "3": "准予撤回"}
        else:
            self.decided = {"1": "同意", "2": "不同意", "3": "准予撤回"}


class Plan:
    """Completion offset, pauses, extension and procedure fault of an accepted case."""

    __slots__ = (
        "accepted",
        "ext",
        "ext_at",
        "fault",
        "k",
        "m",
        "pauses",
        "result",
        "stuck",
        "timed",
    )

    def __init__(self, rng: random.Random, m: MatterInfo, accepted: int) -> None:
        rand = rng.random
        self.m, self.accepted = m, accepted
        r = rand()
        self.stuck = rand() < 0.02  # never completes
        self.ext = self.ext_at = 0
        self.fault: str | None = None
        self.timed: list[tuple[str, int, int | None]] = []  # (kind, start, end instant)
        if m.immediate:
            self.result = "1" if r < 0.985 else "3"
            self.k = 0 if rand() < 0.98 else 1 + int(rand() * 3)
            self.pauses: list[Pause] = []
            return
        self.result = "1" if r < 0.93 else "2" if r < 0.97 else "3"
        f = rand()
        self.fault = FAULTS[int(f * 100)] if f < 0.05 else None
        p, s = m.limit, m.statutory
        if p >= 3 and rand() < 0.015:
            self.ext, self.ext_at = 10, max(1, p - 1 - int(rand() * 2))
        limit = p + self.ext
        u = rand()
        if u < 0.955:  # on time; with an extension, because of it
            k = p + 1 + int(rand() * self.ext) if self.ext else 1 + int(rand() ** 1.7 * limit)
        elif u < 0.99:  # after the promised limit, within the statutory one
            upper = limit + 5 if s is None else s + self.ext
            k = limit + 1 + int(rand() * max(1, upper - limit))
        else:  # after the statutory limit
            k = (p + 5 if s is None else s) + self.ext + 1 + int(rand() * 15)
        self.k = k
        self.pauses = self._pauses(rand, p)

    def _pauses(self, rand: Any, p: int) -> list[Pause]:
        m, early, within = self.m, max(1, p // 3), max(1, p - 1)
        pauses: list[Pause] = []
        if rand() < (0.12 if m.major else 0.07):  # 补齐补正
            pauses.append((1 + int(rand() * early), 2 + int(rand() * 14), "F"))
        if m.major and rand() < 0.3:  # 专家评审
            pauses.append((1 + int(rand() * within), 5 + int(rand() * 16), "C"))
        elif m.site and rand() < 0.06:  # 检验检测
            pauses.append((1 + int(rand() * within), 3 + int(rand() * 13), "D"))
        if m.major and rand() < 0.02:  # 听证
            pauses.append((1 + int(rand() * within), 10 + int(rand() * 16), "B"))
        if rand() < 0.01:  # 现场勘查
            pauses.append((1 + int(rand() * within), 2 + int(rand() * 7), "E"))
        if self.fault == "resupplement":  # 补正告知 twice: 一次告知 broken
            first = 1 + int(rand() * early)
            pauses.append((first, 2 + int(rand() * 7), "F"))
            pauses.append((first + 1 + int(rand() * 3), 2 + int(rand() * 7), "F"))
        if self.stuck and rand() < 0.35:  # the applicant never brings the missing papers
            pauses.append((1 + int(rand() * self.k), None, "F"))
        if not pauses:
            return pauses
        out: list[Pause] = []
        last = 0
        for j0, length, kind in sorted(pauses, key=lambda p: p[0]):
            j = max(j0, last + 1)  # one counted day at least between two pauses
            if j > self.k:
                break
            out.append((j, length, kind))
            last = j
            if length is None:
                break
        return out

    def _marks(self, rand: Any) -> list[tuple[int, int, str, Any]]:
        """(counted offset, order on that offset, tag, payload): pauses first, 办结 last."""
        m, k = self.m, self.k
        marks: list[tuple[int, int, str, Any]] = []
        if m.steps:
            offs = sorted([int(rand() * (k + 1)) for _ in m.steps])
            if not self.stuck:  # the decision waits for every pause and the extension
                offs[-1] = max(offs[-1], self.ext_at, *(p[0] for p in self.pauses))
            pairs = enumerate(zip(offs, m.steps, strict=True))
            marks = [(offset, 2 + i, "step", step) for i, (offset, step) in pairs]
            if self.stuck:
                del marks[int(rand() * len(marks)) :]
        if not self.stuck:
            marks.append((k, 90, "step", ("办结", m.window, "办结")))
        if self.ext and self.ext_at <= k:
            marks.append((self.ext_at, 1, "extension", None))
        if self.pauses:
            marks += [(p[0], 0, "pause", p) for p in self.pauses]
        if self.ext or self.pauses:
            marks.sort(key=lambda x: (x[0], x[1]))
        return marks

    def timeline(self, rng: random.Random, days: Days) -> list[Event]:
        """Events of the case in order, with instants and handlers; pauses go to `timed`."""
        m, rand = self.m, rng.random
        a = self.accepted // DAY
        natural, prev, wd, base = m.natural, days.prev, days.wd, days.wpos[a]

        def at(offset: int) -> int:
            if natural:  # events still happen on working days, never before acceptance
                d = prev[a + offset]
                return d if d > a else a
            return wd[base + offset]

        t = self.accepted

        def clock(day: int) -> int:
            nonlocal t
            if day > t // DAY:
                t = day * DAY + office_second(rng)
            else:
                t += later_same_day(rng, t % DAY) - t % DAY
            return t

        window = m.window
        events: list[Event] = [["受理", t, window[int(rand() * len(window))], "予以受理"]]
        extra = 0
        for offset, _, tag, what in self._marks(rand):
            if tag == "step":
                name, pool, result = what
                who = pool[int(rand() * len(pool))]
                events.append(
                    [name, clock(at(offset + extra)), who, result or m.decided[self.result]]
                )
            elif tag == "extension":  # granted on this day
                self.timed.append(("A", clock(at(offset + extra)), None))
            else:
                j0, length, kind = what
                start = clock(at(j0 + extra))
                if kind == "F":
                    who = m.review[int(rand() * len(m.review))]
                    events.append(["补正告知", start, who, "一次性告知补正材料"])
                if length is None:
                    self.timed.append((kind, start, None))
                    break
                self.timed.append((kind, start, clock(at(j0 + extra + length - 1))))
                extra += length
        if events[-1][0] == "办结" and not m.immediate and self.result != "3":
            r = rand()
            lag = 0 if r < 0.6 else 1 + int(rand() * 3) if r < 0.99 else 11 + int(rand() * 5)
            who = window[int(rand() * len(window))]
            events.append(["送达", clock(days.next_working(t // DAY, lag)), who, "已送达"])
        return events
