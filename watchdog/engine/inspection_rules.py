"""Evaluation of the repeat-inspection rules over one source's stored inspections.

A repeat is judged over all of one enterprise's inspections, so the scope of a pass is
a set of enterprises (target ids): every enterprise in a full pass, and in an
incremental one the enterprises with an inspection that changed since the last pass or
that is dated after the last pass's instant (it has come into effect since).
Enterprises are taken in chunks; each chunk's inspections are read with one query,
every rule in force is applied, and the findings are reconciled per rule.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, union

from watchdog.engine.evaluate import EvaluationPass, EvaluationResult
from watchdog.engine.findings import Finding
from watchdog.engine.inspections import InspectionRecord, find_repeats
from watchdog.engine.rulefiles import RuleSpec
from watchdog.store import schema
from watchdog.violations import Scope, reconcile

CHUNK_TARGETS = 2000


def evaluate_inspection_rules(run: EvaluationPass, rules: Sequence[RuleSpec]) -> EvaluationResult:
    """Apply the inspection rules in force at the pass's instant to its enterprises."""
    store, source, zone, as_of, record = run.store, run.source, run.zone, run.as_of, run.record
    since, last, now = run.since, run.last, run.now
    started = time.monotonic()
    result = EvaluationResult(source)
    on = as_of.astimezone(zone).date()
    active = [rule for rule in rules if rule.kind == "inspection" and rule.in_force(on)]
    if not active:
        return result
    names: dict[str, str] | None = None
    for targets in _target_chunks(store, source, since, last):
        if names is None:  # read only when there is something to judge: it scans every case
            names = _department_names(store, source)
        records = _inspections(store, source, targets, as_of, zone)
        by_target: dict[str, list[InspectionRecord]] = defaultdict(list)
        for record_ in records:
            by_target[record_.target_id].append(record_)
        for rule in active:
            rule_started = time.monotonic()
            stats = result.stats(rule.id)
            findings: list[Finding] = []
            judged: list[str] = []
            for target in targets:
                stats.applied += 1
                try:
                    breaches = find_repeats(by_target.get(target, []), rule.prepared)
                except Exception as exc:  # one enterprise must not stop the others
                    result.rule_failed(rule.id, f"enterprise {target}", exc)
                    continue
                judged.append(target)
                findings += [
                    Finding(
                        rule_id=rule.id,
                        kind="inspection",
                        finding=breach.finding,
                        source=source,
                        case_id=None,
                        subject=breach.subject,
                        dept_code=breach.dept_code,
                        severity=severity,
                        due_date=None,
                        provisional=False,
                        evidence={"dept_name": names.get(breach.dept_code), **breach.evidence},
                        target_id=breach.target_id,
                    )
                    for breach in breaches
                    if (severity := rule.severity_of(breach.finding)) is not None
                ]
            if record:
                with store.begin() as connection:
                    counts = reconcile(
                        connection,
                        Scope(rule.id, source, judged),
                        findings,
                        at=as_of,
                        now=now or as_of,
                        listener=run.listener,
                    )
                result.counts.add(counts)
            if run.keep_findings:
                result.findings += findings
            stats.seconds += time.monotonic() - rule_started
    result.seconds = time.monotonic() - started
    return result


def _department_names(store: Engine, source: str) -> dict[str, str]:
    """Department names as the source's cases give them (inspections carry codes only)."""
    cases = schema.cases
    query = (
        select(cases.c.dept_code, cases.c.dept_name)
        .where(cases.c.source == source, cases.c.dept_name.is_not(None))
        .distinct()
    )
    with store.connect() as connection:
        return {row.dept_code: row.dept_name for row in connection.execute(query)}


def _target_chunks(
    store: Engine, source: str, since: int | None, last: datetime | None
) -> Iterator[list[str]]:
    table = schema.inspections
    query: Any = select(table.c.target_id).where(table.c.source == source).distinct()
    if since is not None and last is not None:
        # A union of two indexed lookups: with an OR of the conditions the database read
        # every inspection of the source each cycle (0.12 s at a million cases).
        query = union(
            select(table.c.target_id).where(table.c.source == source, table.c.change_seq > since),
            select(table.c.target_id).where(table.c.source == source, table.c.inspected_at > last),
        )
    with store.connect() as connection:
        targets = sorted(connection.scalars(query))
    for start in range(0, len(targets), CHUNK_TARGETS):
        yield targets[start : start + CHUNK_TARGETS]


def _inspections(
    store: Engine, source: str, targets: list[str], as_of: datetime, zone: ZoneInfo
) -> list[InspectionRecord]:
    """The chunk's inspections that had happened by `as_of`, dated in the source's zone."""
    table = schema.inspections
    query = select(table).where(
        table.c.source == source,
        table.c.target_id.in_(targets),
        table.c.inspected_at <= as_of,
    )
    with store.connect() as connection:
        return [
            InspectionRecord(
                inspection_id=row.inspection_id,
                target_id=row.target_id,
                target_name=row.target_name,
                dept_code=row.dept_code,
                inspected_on=row.inspected_at.astimezone(zone).date(),
                kind=row.kind,
                joint_group=row.joint_group,
            )
            for row in connection.execute(query)
        ]
