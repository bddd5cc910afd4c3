"""Reading violation history: lists, one violation in full, notices, summaries.

SQLAlchemy Core over the store, the same on SQLite and PostgreSQL. Records are plain
JSON-ready dicts (times as ISO 8601 in Asia/Shanghai with their offset, dates as
ISO dates), so the CLI, the exports, the HTTP API and the console show the same thing.
Exports stream with `yield_per`: a county's years of violations never sit in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    String,
    and_,
    case,
    func,
    literal_column,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from watchdog.history.filters import Page, Sort, ViolationFilter
from watchdog.store import schema

ZONE = ZoneInfo("Asia/Shanghai")
WATCHDOG_ACTOR = "watchdog"  # who records violation events: the evaluation itself
STREAM_BATCH = 1_000

V = schema.violations
C = schema.cases
_SEVERITY_RANK = case((V.c.severity == "warning", 1), (V.c.severity == "yellow", 2), else_=3)
_SORT_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "id": V.c.id,
    "opened_at": V.c.opened_at,
    "resolved_at": V.c.resolved_at,
    "last_seen_at": V.c.last_seen_at,
    "severity": _SEVERITY_RANK,
    "dept": V.c.dept_code,
    "rule": V.c.rule_id,
    "case": V.c.case_id,
    "source": V.c.source,
}


class local_month(FunctionElement[str]):
    """`YYYY-MM` of a stored UTC time in Asia/Shanghai (UTC+8 all year, no DST)."""

    type = String()
    inherit_cache = True


@compiles(local_month, "sqlite")
def _month_sqlite(element: local_month, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps the naive UTC text SQLAlchemy wrote; strftime shifts it by the offset.
    # Built as an expression so the compiler escapes '%' as the driver's style needs.
    shifted = func.strftime(
        literal_column("'%Y-%m'"), *element.clauses, literal_column("'+8 hours'")
    )
    return str(compiler.process(shifted, **kw))


@compiles(local_month, "postgresql")
def _month_postgresql(element: local_month, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char({column} AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')"


def local_time(moment: datetime | None) -> str | None:
    """An instant as ISO 8601 in Asia/Shanghai with its offset."""
    return moment.astimezone(ZONE).isoformat() if moment is not None else None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=ZONE).astimezone(UTC)


def conditions(violation_filter: ViolationFilter) -> list[ColumnElement[bool]]:
    """The filter as WHERE conditions on `violations`."""
    f = violation_filter
    where: list[ColumnElement[bool]] = []
    for values, column in (
        (f.dept, V.c.dept_code),
        (f.rule, V.c.rule_id),
        (f.kind, V.c.kind),
        (f.finding, V.c.finding),
        (f.severity, V.c.severity),
        (f.state, V.c.state),
        (f.source, V.c.source),
        (f.case, V.c.case_id),
    ):
        if values:
            where.append(column.in_(values))
    for start, end, column in (
        (f.opened_from, f.opened_to, V.c.opened_at),
        (f.resolved_from, f.resolved_to, V.c.resolved_at),
    ):
        if start is not None:
            where.append(column >= _day_start(start))
        if end is not None:
            where.append(column < _day_start(end + timedelta(days=1)))
    return where


def _listing(violation_filter: ViolationFilter, sort: Sort) -> Select[Any]:
    """Violations with their case's department and matter names, filtered and sorted."""
    order = [
        (_SORT_COLUMNS[key].desc() if descending else _SORT_COLUMNS[key].asc()).nulls_last()
        for key, descending in sort.keys
    ]
    return (
        select(
            V,
            C.c.dept_name,
            C.c.matter_code,
            C.c.matter_name,
            C.c.accepted_at,
            C.c.completed_at,
        )
        .outerjoin(C, and_(C.c.source == V.c.source, C.c.case_id == V.c.case_id))
        .where(*conditions(violation_filter))
        .order_by(*order, V.c.id)
    )


def violation_record(row: Any) -> dict[str, Any]:
    """One violation as the API, exports and console show it."""
    return {
        "id": row.id,
        "rule": row.rule_id,
        "kind": row.kind,
        "finding": row.finding,
        "severity": row.severity,
        "state": row.state,
        "source": row.source,
        "case_id": row.case_id,
        "subject": row.subject,
        "dept_code": row.dept_code,
        "dept_name": row.dept_name,
        "matter_code": row.matter_code,
        "matter_name": row.matter_name,
        "accepted_at": local_time(row.accepted_at),
        "completed_at": local_time(row.completed_at),
        "opened_at": local_time(row.opened_at),
        "last_seen_at": local_time(row.last_seen_at),
        "resolved_at": local_time(row.resolved_at),
        "due_date": row.due_date.isoformat() if row.due_date else None,
        "provisional": bool(row.provisional),
        "evidence": dict(row.evidence or {}),
    }


@dataclass(frozen=True)
class ViolationPage:
    items: list[dict[str, Any]]
    total: int
    page: Page

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page.size))

    def as_json(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "total": self.total,
            "page": self.page.number,
            "page_size": self.page.size,
            "pages": self.pages,
        }


def list_violations(
    connection: Connection, violation_filter: ViolationFilter, sort: Sort, page: Page
) -> ViolationPage:
    """One page of the filtered violations and how many there are in all."""
    total = connection.execute(
        select(func.count()).select_from(V).where(*conditions(violation_filter))
    ).scalar_one()
    query = _listing(violation_filter, sort).limit(page.size).offset(page.offset)
    items = [violation_record(row) for row in connection.execute(query)]
    return ViolationPage(items, int(total), page)


def iter_violations(
    store: Engine, violation_filter: ViolationFilter, sort: Sort
) -> Iterator[dict[str, Any]]:
    """Every filtered violation, streamed (server-side cursor on PostgreSQL)."""
    with store.connect() as connection:
        result = connection.execution_options(yield_per=STREAM_BATCH).execute(
            _listing(violation_filter, sort)
        )
        for row in result:
            yield violation_record(row)


def violation_detail(connection: Connection, violation_id: int) -> dict[str, Any] | None:
    """A violation with its case, every event (time and actor) and its notices."""
    row = connection.execute(
        _listing(ViolationFilter(), Sort((("id", False),))).where(V.c.id == violation_id)
    ).one_or_none()
    if row is None:
        return None
    record = violation_record(row)
    events = schema.violation_events
    record["events"] = [
        {
            "event": event.event,
            "severity_from": event.severity_from,
            "severity_to": event.severity_to,
            "at": local_time(event.at),
            "recorded_at": local_time(event.recorded_at),
            "actor": WATCHDOG_ACTOR,
            "reason": event.reason,
            "evidence": event.evidence,
        }
        for event in connection.execute(
            select(events).where(events.c.violation_id == violation_id).order_by(events.c.id)
        )
    ]
    links = schema.notice_violations
    notice_ids = select(links.c.notice_id).where(links.c.violation_id == violation_id)
    record["notices"] = _notices(connection, schema.notices.c.id.in_(notice_ids))
    return record


def notice_detail(connection: Connection, number: str) -> dict[str, Any] | None:
    """A notice as sent (body text), its events, deliveries and violations."""
    found = _notices(connection, schema.notices.c.number == number, with_body=True)
    if not found:
        return None
    notice = found[0]
    links = schema.notice_violations
    query = _listing(ViolationFilter(), Sort((("id", False),))).where(
        V.c.id.in_(select(links.c.violation_id).where(links.c.notice_id == notice["id"]))
    )
    notice["violations"] = [violation_record(row) for row in connection.execute(query)]
    return notice


def _notices(
    connection: Connection, where: ColumnElement[bool], *, with_body: bool = False
) -> list[dict[str, Any]]:
    n = schema.notices
    referred = n.alias("referred")
    rows = connection.execute(
        select(n, referred.c.number.label("refers_to"))
        .outerjoin(referred, referred.c.id == n.c.refers_to_id)
        .where(where)
        .order_by(n.c.issued_at, n.c.id)
    ).all()
    notices = []
    for row in rows:
        notice: dict[str, Any] = {
            "id": row.id,
            "number": row.number,
            "kind": row.kind,
            "refers_to": row.refers_to,
            "dept_code": row.dept_code,
            "dept_name": row.dept_name,
            "severity": row.severity,
            "state": row.state,
            "subject": row.subject,
            "issued_at": local_time(row.issued_at),
            "deadline": row.deadline.isoformat() if row.deadline else None,
            "reply": row.reply,
            "escalated_at": local_time(row.escalated_at),
            "updated_at": local_time(row.updated_at),
            "events": _notice_events(connection, row.id),
            "deliveries": _deliveries(connection, row.id),
        }
        if with_body:
            notice["body_text"] = row.body_text
        notices.append(notice)
    return notices


def _notice_events(connection: Connection, notice_id: int) -> list[dict[str, Any]]:
    e = schema.notice_events
    return [
        {
            "event": row.event,
            "state_from": row.state_from,
            "state_to": row.state_to,
            "at": local_time(row.at),
            "actor": row.actor,
            "detail": row.detail,
        }
        for row in connection.execute(select(e).where(e.c.notice_id == notice_id).order_by(e.c.id))
    ]


def _deliveries(connection: Connection, notice_id: int) -> list[dict[str, Any]]:
    d = schema.deliveries
    return [
        {
            "recipient": row.recipient,
            "role": row.role,
            "state": row.state,
            "attempts": row.attempts,
            "created_at": local_time(row.created_at),
            "delivered_at": local_time(row.delivered_at),
            "last_error": row.last_error,
            "permanent": bool(row.permanent),
            "message_id": row.message_id,
        }
        for row in connection.execute(
            select(d).where(d.c.notice_id == notice_id).order_by(d.c.role.desc(), d.c.id)
        )
    ]


SUMMARY_GROUPINGS = ("dept-month", "dept")


def summary(
    connection: Connection, violation_filter: ViolationFilter, by: str = "dept-month"
) -> list[dict[str, Any]]:
    """Counts per department (and month opened, local time): by severity and state."""
    if by not in SUMMARY_GROUPINGS:
        raise ValueError(f"by: expected one of {', '.join(SUMMARY_GROUPINGS)}, got {by!r}")
    month = local_month(V.c.opened_at)
    groups: list[ColumnElement[Any]] = [V.c.dept_code]
    if by == "dept-month":
        groups.append(month)
    keys = [V.c.dept_code, *([month.label("month")] if by == "dept-month" else [])]

    def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.sum(case((condition, 1), else_=0))

    query = (
        select(
            *keys,
            func.count().label("total"),
            count_where(V.c.severity == "warning").label("warning"),
            count_where(V.c.severity == "yellow").label("yellow"),
            count_where(V.c.severity == "red").label("red"),
            count_where(V.c.state == "open").label("open"),
            count_where(V.c.state == "resolved").label("resolved"),
        )
        .where(*conditions(violation_filter))
        .group_by(*groups)
        .order_by(*groups)
    )
    rows = connection.execute(query).all()
    names = department_names(connection, {row.dept_code for row in rows})
    return [
        {
            "dept_code": row.dept_code,
            "dept_name": names.get(row.dept_code),
            **({"month": row.month} if by == "dept-month" else {}),
            "total": int(row.total),
            "warning": int(row.warning or 0),
            "yellow": int(row.yellow or 0),
            "red": int(row.red or 0),
            "open": int(row.open or 0),
            "resolved": int(row.resolved or 0),
        }
        for row in rows
    ]


def department_names(connection: Connection, codes: set[str] | None = None) -> dict[str, str]:
    """Department code → name as the sources call it (a violation only has the code)."""
    query = select(C.c.dept_code, func.max(C.c.dept_name)).group_by(C.c.dept_code)
    if codes is not None:
        wanted = sorted(code for code in codes if code)
        if not wanted:
            return {}
        query = query.where(C.c.dept_code.in_(wanted[:900]))
    return {code: name for code, name in connection.execute(query) if name}


def departments(connection: Connection) -> list[tuple[str, str | None]]:
    """The departments that have violations, with their names, by code."""
    codes = [
        code
        for (code,) in connection.execute(
            select(V.c.dept_code).where(V.c.dept_code.is_not(None)).distinct()
        )
    ]
    names = department_names(connection, set(codes))
    return sorted((code, names.get(code)) for code in codes)
