"""The rules that judge each case on its own rows — overdue, procedure and fee, pattern —
over one stream of cases.

Each kind can run as a pass of its own (`evaluate_overdue`, `evaluate_case_rules`,
`evaluate_pattern_rules`: backtests run them so), but the daemon runs them together:
each chunk of cases is read once, every kind judges it from its own rows, and then all
their verdicts are reconciled in one transaction. As three passes, a full evaluation of
1M cases read the cases three times (12 s of PostgreSQL's cursor time and about as
much Python), and committed three transactions per chunk, each taking the audit
chain's lock while a rule was still judging.

An incremental pass looks at the cases any kind would look at (the union of their
candidates); a case one kind did not need to see again is judged as before and its
violations stay as they are. A kind that fails as a whole (not on one case: that is
recorded with the rule and the case) is logged and reported as an error of the result,
like a failed pass, and the other kinds go on without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Any

from sqlalchemy import select, union

from watchdog.engine.case_rules import (
    CASE_COLUMNS,
    active_case_rules,
    case_rule_candidates,
    judge_case_rules,
    read_steps_and_fees,
)
from watchdog.engine.checks import OVERDUE, replace_checks
from watchdog.engine.chunks import ChunkRows, case_chunks, chunk_rows
from watchdog.engine.evaluate import (
    CHUNK_CASES,
    OVERDUE_CASE_COLUMNS,
    EvaluationPass,
    EvaluationResult,
    RuleVerdicts,
    judge_overdue,
    overdue_candidates,
    pauses_by_case,
    record_verdicts,
)
from watchdog.engine.findings import Finding
from watchdog.engine.overdue import OverdueRule
from watchdog.engine.pattern_rules import (
    PatternJudges,
    active_pattern_rules,
    pattern_engine_available,
)
from watchdog.engine.rulefiles import RuleSpec
from watchdog.errors import first_line
from watchdog.store import schema

log = logging.getLogger(__name__)

OVERDUE_KIND, CASE_KIND, PATTERN_KIND = "overdue", "procedure and fee", "pattern"


class _Chunk:
    """One chunk of cases and what the kinds decided about it."""

    def __init__(self, run: EvaluationPass, cases: list[dict[str, Any]]) -> None:
        self.cases = cases
        self.case_ids = [case["case_id"] for case in cases]
        # A full pass's chunk holds every case from its first id to its last.
        self.among: ChunkRows = chunk_rows(
            run.source, self.case_ids, contiguous=not run.incremental
        )
        self.verdicts: dict[str, list[RuleVerdicts]] = {}  # by kind
        self.overdue_checks: dict[str, datetime] | None = None  # set when overdue judged it

    def findings(self) -> list[Finding]:
        return [f for verdicts in self.verdicts.values() for v in verdicts for f in v.findings]


def evaluate_case_passes(
    run: EvaluationPass, overdue: OverdueRule | None, rules: Sequence[RuleSpec]
) -> EvaluationResult:
    """Judge the pass's cases by the overdue rule (if any) and the procedure, fee and
    pattern rules in force at its instant; record the verdicts if the pass records."""
    started = time.monotonic()
    result = EvaluationResult(run.source)
    case_rules = active_case_rules(run, rules)
    pattern_rules = active_pattern_rules(run, rules)
    if pattern_rules and not pattern_engine_available(run.source, result):
        pattern_rules = []
    with ExitStack() as stack:
        judges = PatternJudges(stack, run, pattern_rules) if pattern_rules else None
        kinds: dict[str, Callable[[Any, _Chunk], None]] = {}
        if overdue is not None:
            kinds[OVERDUE_KIND] = lambda connection, chunk: _judge_overdue(
                run, overdue, connection, chunk, result
            )
        if case_rules:
            kinds[CASE_KIND] = lambda connection, chunk: chunk.verdicts.setdefault(
                CASE_KIND, []
            ).extend(
                judge_case_rules(
                    run,
                    case_rules,
                    chunk.cases,
                    *read_steps_and_fees(connection, chunk.among),
                    result,
                )
            )
        if judges is not None:
            kinds[PATTERN_KIND] = lambda connection, chunk: chunk.verdicts.setdefault(
                PATTERN_KIND, []
            ).extend(judges.judge(run, connection, chunk.cases, chunk.among, result))
        if not kinds:
            return result
        for cases in case_chunks(
            run.store, run.source, _columns(), _candidates(run, kinds), run.cases, CHUNK_CASES
        ):
            chunk = _Chunk(run, cases)
            with run.store.connect() as connection:
                for kind, judge in list(kinds.items()):
                    try:
                        judge(connection, chunk)
                    except Exception as exc:
                        _fail(run, result, kinds, chunk, kind, exc)
                        # PostgreSQL refuses all else in a transaction after an error: the
                        # next kind reads in a new one.
                        connection.rollback()
            if run.record:
                for kind, error in _record(run, chunk, result).items():
                    _fail(run, result, kinds, chunk, kind, error)
            if run.keep_findings:
                result.findings += chunk.findings()
            result.cases_evaluated += len(cases)
            if not kinds:
                break
    result.seconds = time.monotonic() - started
    return result


def _fail(
    run: EvaluationPass,
    result: EvaluationResult,
    kinds: dict[str, Any],
    chunk: _Chunk,
    kind: str,
    exc: Exception,
) -> None:
    """A kind failed as a whole: an error of the pass, and the others go on without it."""
    log.error('source "%s": %s rules failed: %s', run.source, kind, first_line(exc), exc_info=exc)
    result.errors.append(f"{kind} rules: {first_line(exc)}")
    kinds.pop(kind, None)
    chunk.verdicts.pop(kind, None)


def _judge_overdue(
    run: EvaluationPass,
    rule: OverdueRule,
    connection: Any,
    chunk: _Chunk,
    result: EvaluationResult,
) -> None:
    pauses = pauses_by_case(connection, chunk.among)
    verdicts, checks = judge_overdue(
        run, rule, [(case, pauses.get(case["case_id"], [])) for case in chunk.cases], result
    )
    chunk.verdicts[OVERDUE_KIND] = [verdicts]
    chunk.overdue_checks = checks


def _record(run: EvaluationPass, chunk: _Chunk, result: EvaluationResult) -> dict[str, Exception]:
    """Record all verdicts on a chunk in one transaction, decided before it began: the
    audit chain's lock, taken at the first violation change, is held for the writing
    only. If that fails, each kind is recorded again in a transaction of its own, so
    that a kind the store refuses (a value it cannot hold, a listener that raises) does
    not hold back the others. The kinds that failed, with their errors."""
    try:
        _write(run, chunk, list(chunk.verdicts), result)
    except Exception:
        log.warning(
            'source "%s": recording cases %s-%s failed; recording each rule kind alone',
            run.source,
            chunk.case_ids[0],
            chunk.case_ids[-1],
        )
    else:
        return {}
    failed: dict[str, Exception] = {}
    for kind in list(chunk.verdicts):
        try:
            _write(run, chunk, [kind], result)
        except Exception as exc:
            failed[kind] = exc
    return failed


def _write(
    run: EvaluationPass, chunk: _Chunk, kinds: Sequence[str], result: EvaluationResult
) -> None:
    """The verdicts of `kinds` in one transaction; counted in `result` once committed."""
    bounds = chunk.among.bounds
    written = EvaluationResult(run.source)
    with run.store.begin() as connection:
        for kind in kinds:
            record_verdicts(connection, run, chunk.verdicts[kind], bounds, written)
            if kind == OVERDUE_KIND and chunk.overdue_checks is not None:
                replace_checks(
                    connection, run.source, OVERDUE, chunk.case_ids, chunk.overdue_checks, bounds
                )
    result.add(written)


def _columns() -> tuple[str, ...]:
    """The case columns any kind reads (the pattern rules read their own rows)."""
    return tuple(dict.fromkeys((*OVERDUE_CASE_COLUMNS, *CASE_COLUMNS)))


def _candidates(run: EvaluationPass, kinds: Mapping[str, object]) -> Any | None:
    """The case ids an incremental pass looks at, as one query (None: every case): those
    of each kind running, the pattern rules' being the case rules' and changed pauses."""
    if not run.incremental:
        return None
    assert run.since is not None
    queries: list[Any] = []
    if OVERDUE_KIND in kinds:
        queries += overdue_candidates(run.source, run.as_of, run.since)
    if CASE_KIND in kinds or PATTERN_KIND in kinds:
        queries += case_rule_candidates(run.source, run.since, run.as_of)
    if PATTERN_KIND in kinds:
        pauses = schema.pauses
        queries.append(
            select(pauses.c.case_id).where(
                pauses.c.source == run.source, pauses.c.change_seq > run.since
            )
        )
    return union(*queries)
