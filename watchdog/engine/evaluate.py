"""Evaluation of one source's stored cases at one instant.

Cases stream from the store joined with their pauses, ordered by case id, and are
graded in chunks. In recording mode each chunk's findings are reconciled with the
stored violations in one transaction; in dry-run mode (`watchdog evaluate`) the
findings are only returned.

Which cases a recording pass looks at: every case in full mode; otherwise the cases
whose row or pauses changed since the last pass (`change_seq` above the source's
`evaluated_seq`) and those whose check is due (`watchdog.engine.checks`): the clock
crossed its next grading threshold, or a row dated in the future at the last pass has
come into effect. Any other case cannot have changed verdict.

A rule that raises on one case is recorded with the rule and the case, and the other
cases and rules go on; the failed case keeps its stored violations as they were (it is
left out of the reconciled scope) until its rows or the rule file change.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select, union, update

from watchdog.engine.checks import EVENT, OVERDUE, due_cases, next_threshold, replace_checks
from watchdog.engine.chunks import ChunkRows, case_chunks, chunk_rows
from watchdog.engine.findings import Finding
from watchdog.engine.overdue import OverdueRule, VerdictNotes
from watchdog.engine.patterns import PatternHosts
from watchdog.store import schema
from watchdog.violations import ReconcileCounts, Scope, ViolationListener, reconcile

log = logging.getLogger(__name__)

# Cases judged and recorded together. A full evaluation of 1M cases on PostgreSQL took
# 49.5-55.2 s at 5,000 against 56.8-60.4 s at 2,000 (fewer statements, transactions
# and takes of the audit chain's lock); the evaluator's peak memory barely moved.
CHUNK_CASES = 5000
LOGGED_FAILURES = 3  # per rule and pass: the first few failures are logged with their case
_PAUSE_COLUMNS = ("pause_id", "kind", "started_at", "ended_at", "granted_days")
# What the overdue rule reads of a case (`OverdueRule.evaluate`): only these, since
# every time column read costs a conversion, a million times over.
OVERDUE_CASE_COLUMNS = (
    "case_id",
    "matter_code",
    "matter_name",
    "dept_code",
    "dept_name",
    "accepted_at",
    "completed_at",
    "promised_limit",
    "statutory_limit",
    "limit_unit",
)


@dataclass(frozen=True)
class EvaluationPass:
    """One evaluation of one source's stored rows: where, at which instant, what to see.

    `since` and `last` are the evaluated_seq and the instant of the last recording pass,
    for an incremental pass; with `since` None a pass looks at everything.
    """

    store: Engine
    source: str
    zone: ZoneInfo
    as_of: datetime
    record: bool
    since: int | None = None
    last: datetime | None = None
    now: datetime | None = None  # wall clock for the record; the instant if not given
    listener: ViolationListener | None = None  # hears each violation change, in its transaction
    # Only the cases with low <= case_id < high (None: unbounded), for a full pass split
    # across processes (`watchdog.engine.shards`); None: every case.
    cases: tuple[str | None, str | None] | None = None
    # Pattern workers kept across passes (`PatternHosts`); None: each pass starts its own.
    pattern_hosts: PatternHosts | None = None
    # Whether the result lists the findings. A recording pass of the daemon leaves them in
    # the store and keeps only counts: at a million cases they were 200 MB held to the end.
    keep_findings: bool = True

    @property
    def incremental(self) -> bool:
        return self.since is not None and self.last is not None


@dataclass
class RuleStats:
    """One rule in one pass: the cases (or enterprises) it judged, those it failed on."""

    applied: int = 0
    failed: int = 0
    seconds: float = 0.0
    first_error: str | None = None  # "case X: message", for the log and the operator

    def add(self, other: RuleStats) -> None:
        self.applied += other.applied
        self.failed += other.failed
        self.seconds += other.seconds
        self.first_error = self.first_error or other.first_error

    @property
    def failed_everywhere(self) -> bool:
        return self.applied > 0 and self.failed == self.applied


@dataclass
class EvaluationResult:
    source: str
    cases_evaluated: int = 0
    findings: list[Finding] = field(default_factory=list)
    counts: ReconcileCounts = field(default_factory=ReconcileCounts)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # rule passes that failed as a whole
    rules: dict[str, RuleStats] = field(default_factory=dict)  # by rule id

    def add(self, other: EvaluationResult) -> None:
        """Fold another pass over the same source into this one."""
        self.cases_evaluated = max(self.cases_evaluated, other.cases_evaluated)
        self.findings += other.findings
        self.counts.add(other.counts)
        self.seconds += other.seconds
        self.errors += other.errors
        for rule_id, stats in other.rules.items():
            self.rules.setdefault(rule_id, RuleStats()).add(stats)

    def stats(self, rule_id: str) -> RuleStats:
        return self.rules.setdefault(rule_id, RuleStats())

    def rule_failed(self, rule_id: str, key: str, exc: Exception) -> None:
        """Record that a rule raised on one case (or enterprise) `key`; log the first few."""
        stats = self.stats(rule_id)
        stats.failed += 1
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        stats.first_error = stats.first_error or f"{key}: {message}"
        if stats.failed <= LOGGED_FAILURES:
            log.error(
                'source "%s": rule "%s" failed on "%s": %s',
                self.source,
                rule_id,
                key,
                message,
                exc_info=stats.failed == 1,
            )

    @property
    def rule_failures(self) -> int:
        return sum(stats.failed for stats in self.rules.values())


def overdue_candidates(source: str, as_of: datetime, evaluated_seq: int) -> list[Any]:
    """Queries of the case ids an incremental overdue pass looks at: a case or pause row
    changed since poll `evaluated_seq`, or the case's check is due at `as_of`. Taken
    together as a union of indexed lookups, not an OR of conditions: with the OR SQLite
    scanned every case of the source each cycle (a second at 1M cases)."""
    cases, pauses = schema.cases, schema.pauses
    return [
        select(cases.c.case_id).where(cases.c.source == source, cases.c.change_seq > evaluated_seq),
        select(pauses.c.case_id).where(
            pauses.c.source == source, pauses.c.change_seq > evaluated_seq
        ),
        due_cases(source, [OVERDUE, EVENT], as_of),
    ]


def _chunks_with_pauses(
    run: EvaluationPass,
) -> Iterator[list[tuple[dict[str, Any], list[Mapping[str, Any]]]]]:
    """The candidate cases in chunks of CHUNK_CASES, each case with its pauses in the
    order they started. Pauses are read per chunk (a range of ids in a full pass, see
    `chunk_rows`): joined to every case, the few cases that have pauses cost a lookup
    for each of the million that have none (5 of 8.7 s of reading at 1M cases)."""
    since = run.since if run.incremental else None
    touched = None if since is None else union(*overdue_candidates(run.source, run.as_of, since))
    chunks = case_chunks(
        run.store, run.source, OVERDUE_CASE_COLUMNS, touched, run.cases, CHUNK_CASES
    )
    with run.store.connect() as connection:
        for cases in chunks:
            ids = [case["case_id"] for case in cases]
            among = chunk_rows(run.source, ids, contiguous=not run.incremental)
            pauses = pauses_by_case(connection, among)
            yield [(case, pauses.get(case["case_id"], [])) for case in cases]


def pauses_by_case(connection: Any, among: ChunkRows) -> dict[str, list[Mapping[str, Any]]]:
    table = schema.pauses
    query = select(table.c.case_id, *(table.c[name] for name in _PAUSE_COLUMNS))
    query, parameters = among.where(query, table)
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    rows = connection.execute(
        query.order_by(table.c.case_id, table.c.started_at, table.c.pause_id), parameters
    )
    for case_id, *values in rows:
        grouped[case_id].append(dict(zip(_PAUSE_COLUMNS, values, strict=True)))
    return grouped


@dataclass
class RuleVerdicts:
    """One rule's verdicts on one chunk of cases, decided and not yet recorded."""

    rule_id: str
    findings: list[Finding] = field(default_factory=list)
    judged: list[str] = field(default_factory=list)  # the cases it did not fail on
    notes: Mapping[str, str] = field(default_factory=dict)  # why no finding, by case
    seconds: float = 0.0  # judging them


def record_verdicts(
    connection: Connection,
    run: EvaluationPass,
    verdicts: Sequence[RuleVerdicts],
    bounds: tuple[str, str] | None,
    result: EvaluationResult,
) -> None:
    """Reconcile each rule's verdicts on a chunk with its stored violations (`bounds`:
    the chunk's first and last case id when it holds every case between them)."""
    for verdict in verdicts:
        started = time.monotonic()
        counts = reconcile(
            connection,
            Scope(verdict.rule_id, run.source, verdict.judged, bounds),
            verdict.findings,
            at=run.as_of,
            now=run.now or run.as_of,
            notes=verdict.notes,
            listener=run.listener,
        )
        result.counts.add(counts)
        result.stats(verdict.rule_id).seconds += time.monotonic() - started


def judge_overdue(
    run: EvaluationPass,
    rule: OverdueRule,
    cases: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
    result: EvaluationResult,
) -> tuple[RuleVerdicts, dict[str, datetime]]:
    """Grade a chunk of cases (each with its pauses): the verdicts, and each case's next
    threshold check (`watchdog.engine.checks`)."""
    started = time.monotonic()
    rule_id = rule.settings.rule_id
    stats = result.stats(rule_id)
    notes = VerdictNotes()
    verdicts = RuleVerdicts(rule_id, notes=notes)
    checks: dict[str, datetime] = {}
    for case, pauses in cases:
        case_id = case["case_id"]
        stats.applied += 1
        try:
            verdict = rule.evaluate(run.source, case, pauses, run.as_of, run.zone)
        except Exception as exc:  # one case's bad data must not stop the others
            result.rule_failed(rule_id, f"case {case_id}", exc)
            continue
        verdicts.judged.append(case_id)
        if verdict.finding is not None:
            verdicts.findings.append(verdict.finding)
        elif run.record:
            notes.add(case_id, verdict)
        check = next_threshold(verdict.reading, rule.settings.grading, run.zone)
        if check is not None:
            checks[case_id] = check
    stats.seconds += time.monotonic() - started
    return verdicts, checks


def evaluate_overdue(run: EvaluationPass, rule: OverdueRule) -> EvaluationResult:
    """Grade the source's cases at the pass's instant; record violations if it records,
    with each case's next threshold check (`watchdog.engine.checks`)."""
    started = time.monotonic()
    result = EvaluationResult(run.source)
    for cases in _chunks_with_pauses(run):
        case_ids = [case["case_id"] for case, _ in cases]
        verdicts, checks = judge_overdue(run, rule, cases, result)
        result.cases_evaluated += len(cases)
        if run.record:
            # A full pass's chunk holds every case from its first id to its last.
            bounds = chunk_rows(run.source, case_ids, contiguous=not run.incremental).bounds
            with run.store.begin() as connection:
                record_verdicts(connection, run, [verdicts], bounds, result)
                replace_checks(connection, run.source, OVERDUE, case_ids, checks, bounds)
        if run.keep_findings:
            result.findings += verdicts.findings
    result.seconds = time.monotonic() - started
    return result


@dataclass(frozen=True)
class Baseline:
    """Where the last recording pass left a source: what it had seen, and when."""

    poll_seq: int  # the source's poll now
    evaluated_seq: int  # changes up to this poll have been evaluated
    evaluated_at: datetime | None  # the instant of the last recording pass


def read_baseline(store: Engine, source: str) -> Baseline:
    state = schema.source_state
    with store.connect() as connection:
        row = connection.execute(
            select(state.c.poll_seq, state.c.evaluated_seq, state.c.evaluated_at).where(
                state.c.source == source
            )
        ).first()
    if row is None:
        return Baseline(0, 0, None)
    return Baseline(row.poll_seq, row.evaluated_seq, row.evaluated_at)


def mark_evaluated(store: Engine, source: str, poll_seq: int, at: datetime) -> None:
    """Every change up to `poll_seq` has been evaluated by every rule, at instant `at`."""
    state = schema.source_state
    with store.begin() as connection:
        connection.execute(
            update(state)
            .where(state.c.source == source)
            .values(evaluated_seq=poll_seq, evaluated_at=at)
        )
