"""Backtest: what a new or changed rule file would find over the stored history,
compared with the violations on record, without writing anything.

1. Evaluate the file's rules over every source in dry-run passes (`record=False`, every
   case and enterprise) at the instant `end` (the end of that day in the source's zone)
   or, without `end`, at `now`. An `overdue` rule in the file is the overdue rule of
   the backtest; pattern rules run in their own pass as in a cycle.
2. Read the open violations on record for the file's rule ids (a rule pass that failed
   is left out of the comparison, so its rules do not show as "no longer found").
3. Keep, on both sides, what falls in the window: findings about cases accepted in
   [start, end] and repeat inspections inspected in it (no window without dates).
4. Compare by fingerprint: found but not open on record is "added"; open on record but
   not found is "removed"; in both with another grade is a severity change.

Nothing here prints; `watchdog.backtest_report` turns the result into text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from watchdog.calendar import WorkCalendar
from watchdog.clock import Severity
from watchdog.config import SourceSettings
from watchdog.engine.case_rules import CASE_KINDS, evaluate_case_rules
from watchdog.engine.evaluate import EvaluationPass, EvaluationResult, evaluate_overdue
from watchdog.engine.findings import Finding
from watchdog.engine.inspection_rules import evaluate_inspection_rules
from watchdog.engine.overdue import OverdueRule, OverdueRuleSettings
from watchdog.engine.pattern_rules import evaluate_pattern_rules
from watchdog.engine.rulefiles import RuleSpec
from watchdog.store import schema
from watchdog.violations import OPEN

log = logging.getLogger(__name__)

_IN_CHUNK = 900  # ids per IN (...) list, under SQLite's bound-parameter limit


@dataclass(frozen=True)
class Entry:
    """One violation as the backtest compares it: found, or on record."""

    fingerprint: str
    rule_id: str
    kind: str
    finding: str
    source: str
    case_id: str | None
    subject: str | None
    dept_code: str | None
    dept_name: str | None
    severity: Severity

    @property
    def order(self) -> tuple[str, str, str, str, str]:
        return (self.source, self.rule_id, self.case_id or "", self.finding, self.subject or "")


@dataclass(frozen=True)
class SeverityChange:
    recorded: Entry
    found: Entry

    @property
    def milder(self) -> bool:
        """A milder grade is not recorded: a violation keeps the grade it reached."""
        return self.found.severity.rank < self.recorded.severity.rank


@dataclass(frozen=True)
class SourceRun:
    """Where and when one source was evaluated, and what could not be."""

    source: str
    as_of: datetime
    found: int  # findings in the window
    recorded: int  # open violations on record in the window
    errors: tuple[str, ...] = ()


@dataclass
class BacktestResult:
    rules: tuple[RuleSpec, ...]
    start: date | None
    end: date | None
    sources: list[SourceRun] = field(default_factory=list)
    added: list[Entry] = field(default_factory=list)
    removed: list[Entry] = field(default_factory=list)
    changed: list[SeverityChange] = field(default_factory=list)
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)  # rules not evaluated, and why

    @property
    def errors(self) -> list[str]:
        return [error for run in self.sources for error in run.errors]


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The last instant of a day in a zone: events on that day have all happened."""
    return datetime.combine(day + timedelta(days=1), time(0), zone) - timedelta(microseconds=1)


def run_backtest(
    store: Engine,
    sources: Sequence[SourceSettings],
    calendar: WorkCalendar,
    rules: Sequence[RuleSpec],
    *,
    start: date | None,
    end: date | None,
    now: datetime,
) -> BacktestResult:
    """Evaluate `rules` over every source and compare with the record (module docstring)."""
    result = BacktestResult(tuple(rules), start, end)
    overdue = [rule.id for rule in rules if rule.kind == "overdue"]
    if len(overdue) > 1:
        result.notes.append(
            f"several overdue rules ({', '.join(overdue)}): "
            "only the first in force on the date is evaluated"
        )
    for rule in rules:
        if rule.kind not in (*CASE_KINDS, "overdue", "inspection", "pattern"):
            result.notes.append(f"{rule.id}: kind {rule.kind!r} is not backtested")
    for source in sources:
        as_of = end_of_day(end, source.timezone) if end else now.astimezone(source.timezone)
        on = as_of.astimezone(source.timezone).date()
        found, evaluated, errors = _evaluate(store, source, calendar, rules, as_of, now)
        recorded = list(_recorded(store, source.name, evaluated))
        window = _Window(store, source, start, as_of if (start or end) else None)
        found = window.keep(found)
        recorded = window.keep(recorded)
        _compare(result, found, recorded)
        result.sources.append(
            SourceRun(source.name, as_of, len(found), len(recorded), tuple(errors))
        )
        for rule in rules:
            if not rule.in_force(on):
                result.notes.append(f"{rule.id}: not in force on {on} (source {source.name})")
    _sort(result)
    return result


def _evaluate(
    store: Engine,
    source: SourceSettings,
    calendar: WorkCalendar,
    rules: Sequence[RuleSpec],
    as_of: datetime,
    now: datetime,
) -> tuple[list[Entry], set[str], list[str]]:
    """The findings of every pass at `as_of`, the rule ids evaluated, and pass errors."""
    zone = source.timezone
    run = EvaluationPass(store, source.name, zone, as_of, record=False, now=now)
    on = as_of.astimezone(zone).date()
    passes: list[tuple[str, list[RuleSpec], Callable[[], EvaluationResult]]] = []
    overdue = next((r for r in rules if r.kind == "overdue" and r.in_force(on)), None)
    if overdue is not None:
        rule = OverdueRule(OverdueRuleSettings(overdue.id, overdue.prepared), calendar)
        passes.append(("overdue", [overdue], lambda: evaluate_overdue(run, rule)))
    case_rules = [r for r in rules if r.kind in CASE_KINDS]
    if case_rules:
        passes.append(
            ("procedure and fee", case_rules, lambda: evaluate_case_rules(run, case_rules))
        )
    inspection_rules = [r for r in rules if r.kind == "inspection"]
    if inspection_rules:
        passes.append(
            (
                "inspection",
                inspection_rules,
                lambda: evaluate_inspection_rules(run, inspection_rules),
            )
        )
    pattern_rules = [r for r in rules if r.kind == "pattern"]
    if pattern_rules:
        passes.append(
            ("pattern", pattern_rules, lambda: evaluate_pattern_rules(run, pattern_rules))
        )
    found: list[Entry] = []
    evaluated: set[str] = set()
    errors: list[str] = []
    for kind, kind_rules, evaluate_pass in passes:
        try:
            outcome = evaluate_pass()
        except Exception as exc:  # one failing pass must not hide what the others found
            log.exception('backtest of source "%s": %s rules failed', source.name, kind)
            errors.append(f"source {source.name}: {kind} rules failed: {exc}")
            continue
        found += [_entry(finding) for finding in outcome.findings]
        # A rule that raised on some cases found nothing there: say so, since their
        # violations on record then show as no longer found.
        errors += [
            f"source {source.name}: rule {rule_id} failed on {stats.failed} of "
            f"{stats.applied} (first: {stats.first_error})"
            for rule_id, stats in sorted(outcome.rules.items())
            if stats.failed
        ]
        # A rule out of force records nothing, so its violations on record stand.
        evaluated |= {rule.id for rule in kind_rules if rule.in_force(on)}
    return found, evaluated, errors


def _entry(finding: Finding) -> Entry:
    dept_name = finding.evidence.get("dept_name")
    return Entry(
        fingerprint=finding.fingerprint,
        rule_id=finding.rule_id,
        kind=finding.kind,
        finding=finding.finding,
        source=finding.source,
        case_id=finding.case_id,
        subject=finding.subject,
        dept_code=finding.dept_code,
        dept_name=dept_name if isinstance(dept_name, str) else None,
        severity=finding.severity,
    )


def _recorded(store: Engine, source: str, rule_ids: Iterable[str]) -> Iterable[Entry]:
    """The open violations on record of these rules on this source."""
    ids = sorted(rule_ids)
    if not ids:
        return
    table = schema.violations
    query = select(table).where(
        table.c.source == source, table.c.state == OPEN, table.c.rule_id.in_(ids)
    )
    with store.connect() as connection:
        for row in connection.execute(query):
            evidence = row.evidence if isinstance(row.evidence, Mapping) else {}
            dept_name = evidence.get("dept_name")
            yield Entry(
                fingerprint=row.fingerprint,
                rule_id=row.rule_id,
                kind=row.kind,
                finding=row.finding,
                source=row.source,
                case_id=row.case_id,
                subject=row.subject,
                dept_code=row.dept_code,
                dept_name=dept_name if isinstance(dept_name, str) else None,
                severity=Severity(row.severity),
            )


class _Window:
    """Which entries fall in [start, until]: cases by acceptance, repeat inspections by
    the inspection date. The dates are read only for the ids the entries name, so the
    cost follows the number of findings, not the size of the history."""

    def __init__(
        self, store: Engine, source: SourceSettings, start: date | None, until: datetime | None
    ) -> None:
        self.store = store
        self.source = source.name
        self.since = datetime.combine(start, time(0), source.timezone) if start else None
        self.until = until
        self.active = until is not None

    def keep(self, entries: list[Entry]) -> list[Entry]:
        if not self.active:
            return entries
        case_ids = {e.case_id for e in entries if e.case_id is not None}
        inspection_ids = {e.subject for e in entries if e.case_id is None and e.subject}
        accepted = self._times(schema.cases, "case_id", "accepted_at", case_ids)
        inspected = self._times(schema.inspections, "inspection_id", "inspected_at", inspection_ids)
        return [
            e
            for e in entries
            if self._inside(
                accepted.get(e.case_id) if e.case_id else inspected.get(e.subject or "")
            )
        ]

    def _inside(self, moment: datetime | None) -> bool:
        if moment is None:
            return False
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment <= self.until
        )

    def _times(self, table: Any, key: str, column: str, ids: set[str]) -> dict[str, datetime]:
        ordered = sorted(ids)
        times: dict[str, datetime] = {}
        with self.store.connect() as connection:
            for at in range(0, len(ordered), _IN_CHUNK):
                query = select(table.c[key], table.c[column]).where(
                    table.c.source == self.source, table.c[key].in_(ordered[at : at + _IN_CHUNK])
                )
                for identity, moment in connection.execute(query):
                    if moment is not None:
                        times[identity] = moment
        return times


def _compare(result: BacktestResult, found: list[Entry], recorded: list[Entry]) -> None:
    on_record = {entry.fingerprint: entry for entry in recorded}
    seen: set[str] = set()
    for entry in found:
        if entry.fingerprint in seen:
            continue  # one violation per fingerprint, as the record keeps them
        seen.add(entry.fingerprint)
        before = on_record.get(entry.fingerprint)
        if before is None:
            result.added.append(entry)
        elif before.severity != entry.severity:
            result.changed.append(SeverityChange(before, entry))
        else:
            result.unchanged += 1
    result.removed += [entry for entry in recorded if entry.fingerprint not in seen]


def _sort(result: BacktestResult) -> None:
    result.added.sort(key=lambda e: e.order)
    result.removed.sort(key=lambda e: e.order)
    result.changed.sort(key=lambda c: c.found.order)
