"""Where changes enter the chain: violation changes, notice events, rule-set loads.

Each hook appends in the transaction that makes the change, so an entry exists exactly
when its change committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, insert, select

from watchdog.audit.chain import DAEMON, Entry, append, lock_chain
from watchdog.store import schema

if TYPE_CHECKING:
    from watchdog.engine.rulefiles import RuleSet
    from watchdog.violations import ViolationChange, ViolationListener

VIOLATION, NOTICE, RULESET = "violation", "notice", "ruleset"


def audit_violation_changes(connection: Connection, changes: Sequence[ViolationChange]) -> None:
    """The violation listener that is always on: one entry per change, in one batch."""
    append(connection, violation_entries(changes))


def violation_entries(changes: Sequence[ViolationChange]) -> list[Entry]:
    entries = []
    for change in changes:
        payload: dict[str, Any] = {
            "severity_from": change.severity_from,
            "severity_to": change.severity_to,
        }
        finding = change.finding
        if finding is not None:
            payload.update(
                fingerprint=finding.fingerprint,
                rule_id=finding.rule_id,
                kind=finding.kind,
                finding=finding.finding,
                source=finding.source,
                case_id=finding.case_id,
                target_id=finding.target_id,
                subject=finding.subject,
                dept_code=finding.dept_code,
                due_date=finding.due_date.isoformat() if finding.due_date else None,
                provisional=finding.provisional,
                evidence=dict(finding.evidence),
            )
        entries.append(
            Entry(change.at, DAEMON, VIOLATION, str(change.violation_id), change.event, payload)
        )
    return entries


def audit_violation_events(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Entries for `violation_events` rows written outside `reconcile` (escalation)."""
    append(
        connection,
        [
            Entry(
                row["at"],
                DAEMON,
                VIOLATION,
                str(row["violation_id"]),
                row["event"],
                {
                    "severity_from": row.get("severity_from"),
                    "severity_to": row.get("severity_to"),
                    "reason": row.get("reason"),
                },
            )
            for row in rows
        ],
    )


def compose(*listeners: ViolationListener) -> ViolationListener:
    """One listener that calls each in turn, on the same connection and transaction."""

    def listener(connection: Connection, changes: Sequence[ViolationChange]) -> None:
        for each in listeners:
            each(connection, changes)

    return listener


def record_notice_event(
    connection: Connection,
    *,
    notice_id: int,
    number: str,
    event: str,
    state_from: str | None,
    state_to: str | None,
    at: datetime,
    actor: str,
    detail: str | None,
) -> None:
    """Insert a `notice_events` row and its audit entry: every notice transition and
    every issue goes through here."""
    connection.execute(
        insert(schema.notice_events).values(
            notice_id=notice_id,
            event=event,
            state_from=state_from,
            state_to=state_to,
            at=at,
            actor=actor,
            detail=detail,
        )
    )
    payload = {
        "notice_id": notice_id,
        "state_from": state_from,
        "state_to": state_to,
        "detail": detail,
    }
    append(connection, [Entry(at, actor, NOTICE, number, event, payload)])


def rule_files(directory: Path) -> dict[str, str]:
    """Every TOML file under the rules folder (data files included) → its sha256."""
    if not directory.is_dir():
        return {}
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*.toml"))
    }


def record_rule_set(store: Engine, directory: Path, rules: RuleSet, at: datetime) -> bool:
    """Append a `ruleset` entry when the loaded rule set differs from the last one in
    the chain (several daemons loading the same folder append it once). True when an
    entry was appended."""
    table = schema.audit_log
    with store.begin() as connection:
        lock_chain(connection)  # so two daemons starting together append it once
        last = connection.execute(
            select(table.c.entity_id)
            .where(table.c.entity == RULESET)
            .order_by(table.c.seq.desc())
            .limit(1)
        ).scalar_one_or_none()
        if last == rules.fingerprint:
            return False
        payload = {
            "folder": str(directory),
            "fingerprint": rules.fingerprint,
            "files": rule_files(directory),
            "rules": sorted(rule.id for rule in rules.rules),
            "problems": list(rules.problems),
            "previous": last,
        }
        action = "loaded" if last is None else "changed"
        append(connection, [Entry(at, DAEMON, RULESET, rules.fingerprint, action, payload)])
    return True
