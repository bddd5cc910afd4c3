"""Evaluation of one source's stored cases at one instant.

Cases stream from the store joined with their pauses, ordered by case id, and are
graded in chunks. In recording mode each chunk's findings are reconciled with the
stored violations in one transaction; in dry-run mode (`watchdog evaluate`) the
findings are only returned.

Which cases a recording pass looks at: every case in full mode; otherwise the cases
still open at the instant (their clock keeps running) or completed since the last pass
(their verdict settles), and the cases whose row or pauses changed since the last pass
(`change_seq` above the source's `evaluated_seq`). A case completed before the last
pass whose data did not change cannot change verdict.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, or_, select, update

from watchdog.engine.findings import Finding
from watchdog.engine.overdue import OverdueRule
from watchdog.store import schema
from watchdog.violations import ReconcileCounts, Scope, ViolationListener, reconcile

CHUNK_CASES = 2000
_PAUSE_COLUMNS = ("pause_id", "kind", "started_at", "ended_at", "granted_days")


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

    @property
    def incremental(self) -> bool:
        return self.since is not None and self.last is not None


@dataclass
class EvaluationResult:
    source: str
    cases_evaluated: int = 0
    findings: list[Finding] = field(default_factory=list)
    counts: ReconcileCounts = field(default_factory=ReconcileCounts)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # rule passes that failed

    def add(self, other: EvaluationResult) -> None:
        """Fold another pass over the same source into this one."""
        self.cases_evaluated = max(self.cases_evaluated, other.cases_evaluated)
        self.findings += other.findings
        self.counts.add(other.counts)
        self.seconds += other.seconds
        self.errors += other.errors


def _candidate_query(
    source: str, as_of: datetime, evaluated_seq: int | None, last: datetime | None
) -> Any:
    cases, pauses = schema.cases, schema.pauses
    pause_columns = [pauses.c[name] for name in _PAUSE_COLUMNS]
    join = cases.outerjoin(
        pauses, and_(pauses.c.source == cases.c.source, pauses.c.case_id == cases.c.case_id)
    )
    query = select(cases, *pause_columns).select_from(join).where(cases.c.source == source)
    if evaluated_seq is not None:
        changed_pauses = select(pauses.c.case_id).where(
            pauses.c.source == source, pauses.c.change_seq > evaluated_seq
        )
        query = query.where(
            or_(
                and_(
                    cases.c.accepted_at.is_not(None),
                    # Open now, or completed since the last pass (its verdict settles).
                    or_(cases.c.completed_at.is_(None), cases.c.completed_at > (last or as_of)),
                ),
                cases.c.change_seq > evaluated_seq,
                cases.c.case_id.in_(changed_pauses),
            )
        )
    return query.order_by(cases.c.case_id, pauses.c.started_at, pauses.c.pause_id)


def _cases_with_pauses(
    store: Engine, query: Any
) -> Iterator[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]:
    with store.connect() as connection:
        rows = connection.execution_options(yield_per=5000).execute(query).mappings()
        for _, group in groupby(rows, key=lambda row: row["case_id"]):
            # RowMapping is keyed by names here; the cast only tells mypy so.
            members = cast(list[Mapping[str, Any]], list(group))
            pauses = [row for row in members if row["pause_id"] is not None]
            yield members[0], pauses


def evaluate_overdue(run: EvaluationPass, rule: OverdueRule) -> EvaluationResult:
    """Grade the source's cases at the pass's instant; record violations if it records."""
    store, source, zone, as_of, record = run.store, run.source, run.zone, run.as_of, run.record
    since, last, now = run.since, run.last, run.now
    started = time.monotonic()
    result = EvaluationResult(source)
    query = _candidate_query(source, as_of, since, last)
    chunk: list[str] = []
    chunk_findings: list[Finding] = []
    notes: dict[str, str] = {}

    def flush() -> None:
        if record and chunk:
            with store.begin() as connection:
                counts = reconcile(
                    connection,
                    Scope(rule.settings.rule_id, source, chunk),
                    chunk_findings,
                    at=as_of,
                    now=now or as_of,
                    notes=notes,
                    listener=run.listener,
                )
            result.counts.add(counts)
        result.findings.extend(chunk_findings)
        chunk.clear()
        chunk_findings.clear()
        notes.clear()

    for case, pauses in _cases_with_pauses(store, query):
        verdict = rule.evaluate(source, case, pauses, as_of, zone)
        chunk.append(case["case_id"])
        result.cases_evaluated += 1
        if verdict.finding is not None:
            chunk_findings.append(verdict.finding)
        elif record:
            notes[case["case_id"]] = verdict.note
        if len(chunk) >= CHUNK_CASES:
            flush()
    flush()
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
