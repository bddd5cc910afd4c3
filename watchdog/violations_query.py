"""Reading recorded violations back out of the store."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, select

from watchdog.clock import Severity
from watchdog.engine.findings import Finding
from watchdog.store import schema
from watchdog.violations import OPEN


def open_findings(store: Engine) -> Iterator[Finding]:
    """The open violations, in the same shape `watchdog evaluate` prints."""
    table = schema.violations
    query = select(table).where(table.c.state == OPEN).order_by(table.c.id)
    with store.connect() as connection:
        for row in connection.execute(query):
            yield Finding(
                rule_id=row.rule_id,
                kind=row.kind,
                finding=row.finding,
                source=row.source,
                case_id=row.case_id,
                subject=row.subject,
                dept_code=row.dept_code,
                severity=Severity(row.severity),
                due_date=row.due_date,
                provisional=row.provisional,
                evidence=row.evidence,
                target_id=None if row.case_id else row.scope_key,
            )
