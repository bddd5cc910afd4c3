"""The overdue rule (超期): the legal clock applied to one stored case.

The clock works on dates; this module turns stored UTC timestamps into dates in the
source's zone, hides events after the evaluation instant (they have not happened yet),
and writes the evidence a person needs to check the verdict by hand.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from watchdog.calendar import WorkCalendar
from watchdog.clock import (
    CaseClock,
    ClockReading,
    Deadline,
    GradingPolicy,
    PauseSpan,
    read_clock,
)
from watchdog.engine.findings import Finding

KIND = "overdue"


class Verdict(NamedTuple):  # a million of them in a full evaluation: see `clock.Deadline`
    """A case's outcome: a finding, or none and the clock that says why."""

    finding: Finding | None
    reading: ClockReading | None = None  # None when the case has no clock (yet)
    clock: CaseClock | None = None

    @property
    def note(self) -> str:
        """Why there is no finding, in words (kept with a violation it resolves)."""
        if self.finding is not None:
            return ""
        if self.reading is None or self.clock is None:
            return NO_CLOCK
        return _why_no_finding(self.clock, self.reading)


NO_CLOCK = "not accepted yet: no clock"


class VerdictNotes(Mapping[str, str]):
    """Each judged case's note (`Verdict.note`), worded only when asked for: a pass keeps
    the note of every case without a finding, and needs only those of the few whose
    violations it resolves (wording them all was 1 of ~100 CPU-seconds at 1M cases)."""

    def __init__(self) -> None:
        self._verdicts: dict[str, Verdict] = {}

    def add(self, case_id: str, verdict: Verdict) -> None:
        self._verdicts[case_id] = verdict

    def __getitem__(self, case_id: str) -> str:
        return self._verdicts[case_id].note

    def __iter__(self) -> Iterator[str]:
        return iter(self._verdicts)

    def __len__(self) -> int:
        return len(self._verdicts)


def _on(moment: datetime | None, as_of: datetime, zone: ZoneInfo) -> date | None:
    """The local date of an event, or None if it has not happened by `as_of`."""
    if moment is None or moment > as_of:
        return None
    return moment.astimezone(zone).date()


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


@dataclass(frozen=True)
class OverdueRuleSettings:
    """The overdue rule as its rule file states it: its id and grading thresholds."""

    rule_id: str
    grading: GradingPolicy


class OverdueRule:
    """Grades a case warning / yellow / red against its promised and statutory limits."""

    def __init__(self, settings: OverdueRuleSettings, calendar: WorkCalendar) -> None:
        self.settings = settings
        self.calendar = calendar

    def evaluate(
        self,
        source: str,
        case: Mapping[str, Any],
        pauses: Sequence[Mapping[str, Any]],
        as_of: datetime,
        zone: ZoneInfo,
    ) -> Verdict:
        accepted = _on(case["accepted_at"], as_of, zone)
        if accepted is None:
            return Verdict(None)
        clock = CaseClock(
            accepted=accepted,
            completed=_on(case["completed_at"], as_of, zone),
            promised_limit=case["promised_limit"],
            statutory_limit=case["statutory_limit"],
            unit=case["limit_unit"],
            pauses=tuple(
                PauseSpan(
                    kind=p["kind"],
                    start=started,
                    end=_on(p["ended_at"], as_of, zone),
                    granted_days=p["granted_days"],
                )
                for p in pauses
                if (started := _on(p["started_at"], as_of, zone)) is not None
            ),
        )
        on = as_of.astimezone(zone).date()
        reading = read_clock(clock, on, self.calendar, self.settings.grading)
        if reading is None:
            return Verdict(None)
        if reading.severity is None:
            return Verdict(None, reading, clock)
        # Built only for a finding: most cases have none, and their evidence was a third
        # of the rule's time.
        evidence = self._evidence(case, clock, reading)
        finding = Finding(
            rule_id=self.settings.rule_id,
            kind=KIND,
            finding=KIND,
            source=source,
            case_id=case["case_id"],
            subject=None,
            dept_code=case["dept_code"],
            severity=reading.severity,
            due_date=reading.promised.due,
            provisional=reading.provisional,
            evidence=evidence,
        )
        return Verdict(finding, reading, clock)

    def _evidence(
        self, case: Mapping[str, Any], clock: CaseClock, reading: ClockReading
    ) -> dict[str, Any]:
        extension_days = sum(p.granted_days or 0 for p in clock.pauses if p.kind == "extension")
        return {
            "matter_code": case["matter_code"],
            "matter_name": case["matter_name"],
            "dept_name": case["dept_name"],
            "accepted_on": clock.accepted.isoformat() if clock.accepted else None,
            "unit": clock.unit,
            "promised_limit": clock.promised_limit,
            "statutory_limit": clock.statutory_limit,
            "extension_days": extension_days,
            "pauses": [
                {
                    "kind": p.kind,
                    "start": p.start.isoformat(),
                    "end": _iso(p.end),
                    "granted_days": p.granted_days,
                }
                for p in clock.pauses
            ],
            "due_date": _iso(reading.promised.due),
            "statutory_due_date": _iso(reading.statutory.due) if reading.statutory else None,
            "red_due_date": _iso(reading.red.due),
            "completed_on": _iso(clock.completed),
            "evaluated_on": reading.evaluated_on.isoformat(),
            "counted_days": reading.counted_days,
            "days_late": reading.days_late,
            "remaining_days": reading.remaining_days,
            "provisional": reading.provisional,
            "calendar_coverage_end": self.calendar.coverage_end.isoformat(),
        }


def _why_no_finding(clock: CaseClock, reading: ClockReading) -> str:
    due = reading.promised
    if due.due is None:
        running = [p for p in clock.pauses if p.end is None and p.kind != "extension"]
        kinds = ", ".join(f"{p.kind} since {p.start.isoformat()}" for p in running)
        return f"clock stopped ({kinds}): due date not known yet"
    if clock.completed is not None:
        return f"completed on {clock.completed.isoformat()}, on time (due {_due(due)})"
    return f"open, {reading.remaining_days} day(s) remaining (due {_due(due)})"


def _due(deadline: Deadline) -> str:
    return deadline.due.isoformat() if deadline.due else "unknown"
