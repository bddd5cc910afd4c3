"""When a case must be looked at again although none of its rows changed.

Two reasons, each a pass of `case_checks` rows (one per case, the earliest instant):

- `overdue`: the legal clock of an open case crosses its next grading threshold
  (warning, promised due date, red due date). The overdue pass writes it for every
  case it grades (`next_threshold`).
- `event`: a row of the case is dated after the last pass's instant (an acceptance, a
  completion, a step, a fee, a pause start or end): it comes into effect later without
  the row changing. `schedule_events` keeps these for the cases a pass looked at.

Incremental passes select the cases whose check is due (`due_cases`) through the
index on (source, pass, check_at), so a cycle never scans every open case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, insert, select, union_all

from watchdog.clock import ClockReading, GradingPolicy, Severity
from watchdog.store import schema
from watchdog.store.keys import among_keys

OVERDUE = "overdue"
EVENT = "event"
_ONE_DAY = timedelta(days=1)
_CHUNK = 900  # bound parameters per IN list (SQLite's limit is far above; keeps plans cheap)


def due_cases(source: str, passes: Iterable[str], as_of: datetime) -> Any:
    """A subquery of the case ids whose check of one of `passes` is due at `as_of`."""
    checks = schema.case_checks
    return select(checks.c.case_id).where(
        checks.c.source == source,
        checks.c["pass"].in_(list(passes)),
        checks.c.check_at <= as_of,
    )


def next_threshold(
    reading: ClockReading | None, policy: GradingPolicy, zone: ZoneInfo
) -> datetime | None:
    """The first instant after the reading's date at which the case's grade may change
    by the passing of time alone; None when it cannot (completed, red, or the due date
    is held back by a running pause, which only a changed row can release).

    The warning date is bounded from below: remaining days fall by at most one a day,
    so the case cannot be warned before `remaining - warning_days` days from now. An
    early check only re-grades the case and schedules the next one.
    """
    if reading is None or reading.decision_date != reading.evaluated_on:
        return None
    if reading.promised.due is None or reading.severity is Severity.RED:
        return None
    if reading.remaining_days is None and reading.days_late is None:
        return None  # completed on the evaluation date: settled
    on = reading.evaluated_on
    candidates: list[date] = []
    if reading.severity is None and reading.remaining_days is not None:
        candidates.append(on + timedelta(days=max(1, reading.remaining_days - policy.warning_days)))
    if reading.severity in (None, Severity.WARNING):
        candidates.append(reading.promised.due + _ONE_DAY)
    if reading.red.due is not None:
        candidates.append(reading.red.due + _ONE_DAY)
    future = [day for day in candidates if day > on]
    if not future:
        return None
    return datetime.combine(min(future), time.min, zone)


def replace_checks(
    connection: Connection,
    source: str,
    pass_name: str,
    case_ids: Iterable[str],
    checks: Mapping[str, datetime],
    span: tuple[str, str] | None = None,
) -> None:
    """Set the checks of one pass for the given cases: `checks[case]`, or none.

    `span`, the first and last id as the store orders them, when the cases are every
    case of the source in that range (a chunk of a full pass): one range delete.
    """
    table = schema.case_checks
    ids = list(case_ids)
    if span is not None:
        connection.execute(
            delete(table).where(
                table.c.source == source,
                table.c["pass"] == pass_name,
                table.c.case_id >= span[0],
                table.c.case_id <= span[1],
            )
        )
        ids = []
    for start in range(0, len(ids), _CHUNK):
        connection.execute(
            delete(table).where(
                table.c.source == source,
                table.c["pass"] == pass_name,
                among_keys(connection, table.c.case_id, ids[start : start + _CHUNK]),
            )
        )
    rows = [
        {"source": source, "pass": pass_name, "case_id": case_id, "check_at": at}
        for case_id, at in checks.items()
    ]
    if rows:
        connection.execute(insert(table), rows)


def _future_event_times(source: str, as_of: datetime) -> list[Any]:
    """Queries of (case_id, instant) for every row of the source dated after `as_of`."""
    cases, steps, fees, pauses = schema.cases, schema.steps, schema.fees, schema.pauses
    return [
        select(cases.c.case_id, cases.c.accepted_at.label("at")).where(
            cases.c.source == source, cases.c.accepted_at > as_of
        ),
        select(cases.c.case_id, cases.c.completed_at.label("at")).where(
            cases.c.source == source, cases.c.completed_at > as_of
        ),
        select(steps.c.case_id, steps.c.finished_at.label("at")).where(
            steps.c.source == source, steps.c.finished_at > as_of
        ),
        select(fees.c.case_id, fees.c.charged_at.label("at")).where(
            fees.c.source == source, fees.c.charged_at > as_of
        ),
        select(pauses.c.case_id, pauses.c.started_at.label("at")).where(
            pauses.c.source == source, pauses.c.started_at > as_of
        ),
        select(pauses.c.case_id, pauses.c.ended_at.label("at")).where(
            pauses.c.source == source, pauses.c.ended_at > as_of
        ),
    ]


def touched_cases(source: str, since: int, as_of: datetime) -> Any:
    """A subquery of the cases an incremental pass looks at for events: those with a
    row changed since poll `since`, and those whose event check is due."""
    cases, steps, fees, pauses = schema.cases, schema.steps, schema.fees, schema.pauses
    return union_all(
        select(cases.c.case_id).where(cases.c.source == source, cases.c.change_seq > since),
        *(
            select(table.c.case_id).where(table.c.source == source, table.c.change_seq > since)
            for table in (steps, fees, pauses)
        ),
        due_cases(source, [EVENT], as_of),
    )


def schedule_events(connection: Connection, source: str, as_of: datetime, since: int | None) -> int:
    """Keep the `event` checks of the source's cases: each case's earliest row dated
    after `as_of`. With `since` None every case is rescheduled (a full pass); otherwise
    only the cases touched since poll `since` or whose check was due. Returns the
    number of cases with a check now.
    """
    table = schema.case_checks
    earliest: dict[str, datetime] = {}
    parts = _future_event_times(source, as_of)
    touched: list[str] = []
    if since is None:
        scoped = parts
    else:
        touched = [row[0] for row in connection.execute(touched_cases(source, since, as_of))]
        if not touched:
            return 0
        scoped = []
        ids = sorted(set(touched))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            scoped += [
                part.where(among_keys(connection, part.selected_columns[0], chunk))
                for part in parts
            ]
    for part in scoped:
        for case_id, at in connection.execute(part):
            if case_id not in earliest or at < earliest[case_id]:
                earliest[case_id] = at
    # Written after reading: on SQLite the first write takes the store's write lock, and
    # a full pass's reads (every row dated after the instant) take a second at 1M cases
    # while the evaluation's workers still commit their ranges.
    if since is None:
        connection.execute(delete(table).where(table.c.source == source, table.c["pass"] == EVENT))
    else:
        replace_checks(connection, source, EVENT, touched, {})
    if earliest:
        connection.execute(
            insert(table),
            [
                {"source": source, "pass": EVENT, "case_id": case_id, "check_at": at}
                for case_id, at in earliest.items()
            ],
        )
    return len(earliest)
