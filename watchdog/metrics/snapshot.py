"""The figures on the wall, computed from the store once per evaluation cycle.

A scrape only reads the latest `StoreSnapshot`; it never queries the database, so a wall
display refreshing every few seconds costs the store nothing.

按时办结率 and cases past due use the legal clock (`watchdog.clock.read_clock`) on each
case rather than the violations table: an overdue finding exists only while an overdue
rule is in force and graded, and its state follows the violation's life (resolved,
reopened), whereas "completed on time" is a plain fact of the case (completion on or
before the promised due date, pauses and extensions counted). The clock gives it exactly
for every case, with or without rules. Only open cases and cases completed in the last
30 days are read, which keeps the pass small.

Label values are bounded: rule ids and kinds (the rule files), severities, department
codes and names (the county's departments), matter codes and names (the catalogue),
notice and delivery states, sources and entities. Never a case id, a person or an address.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import groupby
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, func, or_, select

from watchdog.calendar import WorkCalendar
from watchdog.clock import CaseClock, PauseSpan, read_clock
from watchdog.store import schema

log = logging.getLogger(__name__)

WINDOW = timedelta(days=30)
SEVERITIES = ("warning", "yellow", "red")
NOTICE_STATES = ("issued", "delivered", "acknowledged", "rectified", "closed", "escalated")
# A notice still waiting for the department's rectification once its deadline passed.
AWAITING_RECTIFICATION = ("issued", "delivered", "acknowledged")
DELIVERY_STATES = ("pending", "sending", "sent", "failed_transient", "failed_permanent")
NO_DEPT = "none"  # label value for a violation without a department
NO_DEPT_NAME = "（未注明部门）"


@dataclass(frozen=True)
class SourceClock:
    """What the snapshot needs to read one source's cases: its name and time zone."""

    name: str
    zone: ZoneInfo


@dataclass(frozen=True)
class MatterDays:
    """Processing days of the cases of one matter completed in the window."""

    matter_name: str
    dept: str
    total_days: int
    cases: int

    @property
    def average(self) -> float:
        return self.total_days / self.cases


@dataclass(frozen=True)
class StoreSnapshot:
    """Every store-derived figure at one instant; label tuples as the metrics use them."""

    taken_at: datetime
    seconds: float
    departments: Mapping[str, str]  # code → name, every department known to the store
    open_violations: Mapping[tuple[str, str, str, str], int]  # (rule, kind, severity, dept)
    open_cases: Mapping[str, int]  # dept → accepted cases not completed
    cases_past_due: Mapping[str, int]  # dept → open cases past their promised due date
    completed: Mapping[str, int]  # dept → cases completed in the last 30 days
    completed_on_time: Mapping[str, int]  # dept → of those, on or before the due date
    processing_days: Mapping[str, MatterDays]  # matter code → days of completed cases
    notices: Mapping[str, int]  # state → notices
    notices_overdue: Mapping[str, int]  # dept → notices past deadline, not rectified
    escalations: int  # notice events "escalated", ever
    deliveries: Mapping[str, int]  # DELIVERY_STATES → deliveries
    last_success: Mapping[str, float]  # source → Unix time of the last good cycle (0: never)
    consecutive_failures: Mapping[str, int]  # source → failed cycles in a row
    watermark_lag: Mapping[tuple[str, str], float]  # (source, entity) → seconds
    calendar_coverage_days: float  # days from today to the calendar's last covered day
    clock_errors: int = 0  # cases the clock could not read (logged, left out)

    def dept_name(self, code: str) -> str:
        return NO_DEPT_NAME if code == NO_DEPT else self.departments.get(code, code)


def take_snapshot(
    store: Engine,
    sources: Sequence[SourceClock],
    calendar: WorkCalendar,
    now: datetime,
    rules: Iterable[tuple[str, str]] = (),
) -> StoreSnapshot:
    """Compute every figure at `now`; `rules` are (rule id, kind) pairs to report even at 0."""
    started = time.monotonic()
    # Notice deadlines are dates of the county; its first source's zone says which day it is.
    zone = sources[0].zone if sources else ZoneInfo("Asia/Shanghai")
    today = now.astimezone(zone).date()
    with store.connect() as connection:
        departments = _departments(connection)
        violations, violation_rules = _open_violations(connection)
        notices, overdue, escalations = _notices(connection, today)
        deliveries = _deliveries(connection)
        last_success, failures = _source_states(connection)
        lag = _watermark_lag(connection, now)
    cases = _CaseFigures()
    for source in sources:
        cases.read(store, source, calendar, now)
    for dept in overdue:
        departments.setdefault(dept, dept)
    # A violation without a department (NO_DEPT) is counted, not made a department.
    violation_depts = sorted(departments.keys() | {dept for (*_, dept) in violations})
    all_rules = sorted(set(rules) | violation_rules)
    open_violations = {
        (rule, kind, severity, dept): violations.get((rule, kind, severity, dept), 0)
        for rule, kind in all_rules
        for severity in SEVERITIES
        for dept in violation_depts
    }
    for source in sources:
        last_success.setdefault(source.name, 0.0)
        failures.setdefault(source.name, 0)
    return StoreSnapshot(
        taken_at=now,
        seconds=time.monotonic() - started,
        departments=departments,
        open_violations=open_violations,
        open_cases={d: cases.open[d] for d in departments},
        cases_past_due={d: cases.past_due[d] for d in departments},
        completed={d: cases.completed[d] for d in departments},
        completed_on_time={d: cases.on_time[d] for d in departments},
        processing_days=cases.matters(),
        notices={state: notices.get(state, 0) for state in NOTICE_STATES},
        notices_overdue={d: overdue.get(d, 0) for d in departments},
        escalations=escalations,
        deliveries={state: deliveries.get(state, 0) for state in DELIVERY_STATES},
        last_success=last_success,
        consecutive_failures=failures,
        watermark_lag=lag,
        calendar_coverage_days=float((calendar.coverage_end - today).days),
        clock_errors=cases.errors,
    )


def _departments(connection: Connection) -> dict[str, str]:
    """Every department code in the store with its name (from cases, else notices)."""
    names: dict[str, str] = {}
    notices = schema.notices
    rows = connection.execute(
        select(notices.c.dept_code, func.max(notices.c.dept_name)).group_by(notices.c.dept_code)
    )
    for code, name in rows:
        names[code] = name or code
    cases = schema.cases
    rows = connection.execute(
        select(cases.c.dept_code, func.max(cases.c.dept_name)).group_by(cases.c.dept_code)
    )
    for code, name in rows:
        names[code] = name or names.get(code) or code
    return dict(sorted(names.items()))


def _open_violations(
    connection: Connection,
) -> tuple[dict[tuple[str, str, str, str], int], set[tuple[str, str]]]:
    v = schema.violations
    rows = connection.execute(
        select(v.c.rule_id, v.c.kind, v.c.severity, v.c.dept_code, func.count())
        .where(v.c.state == "open")
        .group_by(v.c.rule_id, v.c.kind, v.c.severity, v.c.dept_code)
    )
    counts = {(r, k, s, d or NO_DEPT): n for r, k, s, d, n in rows}
    seen = connection.execute(select(v.c.rule_id, v.c.kind).distinct())
    return counts, {(rule, kind) for rule, kind in seen}


def _notices(connection: Connection, today: date) -> tuple[dict[str, int], dict[str, int], int]:
    n, events = schema.notices, schema.notice_events
    by_state: dict[str, int] = dict(
        connection.execute(select(n.c.state, func.count()).group_by(n.c.state)).all()
    )
    overdue: dict[str, int] = dict(
        connection.execute(
            select(n.c.dept_code, func.count())
            .where(n.c.state.in_(AWAITING_RECTIFICATION), n.c.deadline < today)
            .group_by(n.c.dept_code)
        ).all()
    )
    escalations = connection.execute(
        select(func.count()).select_from(events).where(events.c.event == "escalated")
    ).scalar_one()
    return by_state, overdue, int(escalations)


def _deliveries(connection: Connection) -> dict[str, int]:
    d = schema.deliveries
    counts: dict[str, int] = {}
    rows = connection.execute(
        select(d.c.state, d.c.permanent, func.count()).group_by(d.c.state, d.c.permanent)
    )
    for state, permanent, number in rows:
        key = state
        if state == "failed":
            key = "failed_permanent" if permanent else "failed_transient"
        counts[key] = counts.get(key, 0) + number
    return counts


def _source_states(
    connection: Connection,
) -> tuple[dict[str, float], dict[str, int]]:
    s = schema.source_state
    last: dict[str, float] = {}
    failures: dict[str, int] = {}
    for source, success, failed in connection.execute(
        select(s.c.source, s.c.last_success_at, s.c.consecutive_failures)
    ):
        last[source] = success.timestamp() if success is not None else 0.0
        failures[source] = failed
    return last, failures


def _watermark_lag(connection: Connection, now: datetime) -> dict[tuple[str, str], float]:
    """Seconds between now and the newest change read per source and entity (never < 0)."""
    w = schema.watermarks
    return {
        (source, entity): max(0.0, (now - updated_at).total_seconds())
        for source, entity, updated_at in connection.execute(
            select(w.c.source, w.c.entity, w.c.updated_at)
        )
    }


_PAUSE_COLUMNS = ("kind", "started_at", "ended_at", "granted_days")


class _CaseFigures:
    """Open cases, cases past due, completions and processing days, by the clock."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()
        self.past_due: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.on_time: Counter[str] = Counter()
        self.days: dict[str, list[Any]] = defaultdict(lambda: ["", "", 0, 0])
        self.errors = 0

    def read(
        self, store: Engine, source: SourceClock, calendar: WorkCalendar, now: datetime
    ) -> None:
        zone, on = source.zone, now.astimezone(source.zone).date()
        for case, pauses in _cases_with_pauses(store, _window_query(source.name, now)):
            try:
                self._add(case, pauses, now, zone, on, calendar)
            except Exception as exc:  # one bad case must not hide every other figure
                self.errors += 1
                if self.errors <= 3:
                    log.warning(
                        'metrics: source "%s": cannot read the clock of case "%s": %s',
                        source.name,
                        case["case_id"],
                        exc,
                    )

    def _add(
        self,
        case: Mapping[str, Any],
        pauses: Sequence[Mapping[str, Any]],
        now: datetime,
        zone: ZoneInfo,
        on: date,
        calendar: WorkCalendar,
    ) -> None:
        completed = _local_date(case["completed_at"], now, zone)
        clock = CaseClock(
            accepted=_local_date(case["accepted_at"], now, zone),
            completed=completed,
            promised_limit=case["promised_limit"],
            statutory_limit=case["statutory_limit"],
            unit=case["limit_unit"],
            pauses=tuple(
                PauseSpan(
                    p["kind"], started, _local_date(p["ended_at"], now, zone), p["granted_days"]
                )
                for p in pauses
                if (started := _local_date(p["started_at"], now, zone)) is not None
            ),
        )
        reading = read_clock(clock, on, calendar)
        if reading is None:
            return
        due = reading.promised.due
        late = due is not None and reading.decision_date > due
        dept = case["dept_code"]
        if completed is None:
            self.open[dept] += 1
            self.past_due[dept] += late
            return
        self.completed[dept] += 1
        self.on_time[dept] += not late
        matter = case["matter_code"] or ""
        entry = self.days[matter]
        entry[0] = case["matter_name"] or entry[0] or matter
        entry[1] = dept
        entry[2] += reading.counted_days
        entry[3] += 1

    def matters(self) -> dict[str, MatterDays]:
        return {
            code: MatterDays(name, dept, total, count)
            for code, (name, dept, total, count) in sorted(self.days.items())
        }


def _local_date(moment: datetime | None, now: datetime, zone: ZoneInfo) -> date | None:
    """The local date of an event, or None if it has not happened by `now`."""
    if moment is None or moment > now:
        return None
    return moment.astimezone(zone).date()


def _window_query(source: str, now: datetime) -> Any:
    """Accepted cases still open at `now` or completed in the 30 days before it."""
    cases, pauses = schema.cases, schema.pauses
    join = cases.outerjoin(
        pauses, and_(pauses.c.source == cases.c.source, pauses.c.case_id == cases.c.case_id)
    )
    return (
        select(
            cases.c.case_id,
            cases.c.matter_code,
            cases.c.matter_name,
            cases.c.dept_code,
            cases.c.accepted_at,
            cases.c.completed_at,
            cases.c.promised_limit,
            cases.c.statutory_limit,
            cases.c.limit_unit,
            pauses.c.pause_id,
            *[pauses.c[name] for name in _PAUSE_COLUMNS],
        )
        .select_from(join)
        .where(
            cases.c.source == source,
            cases.c.accepted_at <= now,
            or_(cases.c.completed_at.is_(None), cases.c.completed_at > now - WINDOW),
        )
        .order_by(cases.c.case_id, pauses.c.started_at, pauses.c.pause_id)
    )


def _cases_with_pauses(
    store: Engine, query: Any
) -> Iterator[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]:
    with store.connect() as connection:
        rows = connection.execution_options(yield_per=5000).execute(query).mappings()
        for _, group in groupby(rows, key=lambda row: row["case_id"]):
            members = cast(list[Mapping[str, Any]], list(group))
            yield members[0], [m for m in members if m["pause_id"] is not None]
