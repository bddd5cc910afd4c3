"""Evaluation of the rules that judge one case from its own rows: procedure and fees.

Cases stream from the store in case-id order, in chunks; each chunk's steps and fees
are read with one query each, every rule in force is applied, and the chunk's findings
are reconciled per rule in one transaction (or only returned, in a dry run).

Which cases an incremental pass looks at: those whose case row, steps or fees changed
since the last pass, and those with a row dated after the last pass's instant that has
come into effect since (their `event` check is due, see `watchdog.engine.checks`). Any
other case keeps its verdict.

A rule that raises on one case is recorded with the rule and the case; that case is
left out of the rule's reconciled scope (its violations stay as they were) and the
other cases and rules go on.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select, union

from watchdog.engine.checks import EVENT, due_cases
from watchdog.engine.chunks import ChunkRows, case_chunks, chunk_rows
from watchdog.engine.evaluate import (
    CHUNK_CASES,
    EvaluationPass,
    EvaluationResult,
    RuleVerdicts,
    record_verdicts,
)
from watchdog.engine.fees import FeeRecord, check_fee
from watchdog.engine.findings import Finding
from watchdog.engine.procedure import StepRecord, check_procedure
from watchdog.engine.rulefiles import RuleSpec
from watchdog.store import schema

CASE_KINDS = ("procedure", "fee")


def active_case_rules(run: EvaluationPass, rules: Sequence[RuleSpec]) -> list[RuleSpec]:
    on = run.as_of.astimezone(run.zone).date()
    return [rule for rule in rules if rule.kind in CASE_KINDS and rule.in_force(on)]


def evaluate_case_rules(run: EvaluationPass, rules: Sequence[RuleSpec]) -> EvaluationResult:
    """Apply the procedure and fee rules in force at the pass's instant to its cases."""
    started = time.monotonic()
    result = EvaluationResult(run.source)
    active = active_case_rules(run, rules)
    if not active:
        return result
    since = run.since if run.incremental else None
    for chunk in candidate_chunks(run.store, run.source, since, run.as_of, run.cases):
        case_ids = [c["case_id"] for c in chunk]
        # A full pass's chunks are runs of consecutive case ids (see `chunk_rows`).
        among = chunk_rows(run.source, case_ids, contiguous=since is None)
        with run.store.begin() if run.record else run.store.connect() as connection:
            steps, fees = read_steps_and_fees(connection, among)
            verdicts = judge_case_rules(run, active, chunk, steps, fees, result)
            if run.record:
                record_verdicts(connection, run, verdicts, among.bounds, result)
        if run.keep_findings:
            result.findings += [finding for verdict in verdicts for finding in verdict.findings]
        result.cases_evaluated += len(chunk)
    result.seconds = time.monotonic() - started
    return result


def judge_case_rules(
    run: EvaluationPass,
    active: Sequence[RuleSpec],
    chunk: Sequence[Mapping[str, Any]],
    steps: Mapping[str, list[StepRecord]],
    fees: Mapping[str, list[Mapping[str, Any]]],
    result: EvaluationResult,
) -> list[RuleVerdicts]:
    """Each rule's verdicts on a chunk of cases, given their steps and fees."""
    out = []
    for rule in active:
        started = time.monotonic()
        stats = result.stats(rule.id)
        stats.applied += len(chunk)
        verdicts = RuleVerdicts(rule.id)
        breaches_of = _procedure_breaches if rule.kind == "procedure" else _fee_breaches
        rows = steps if rule.kind == "procedure" else fees
        for case in chunk:
            try:
                breaches = breaches_of(rule, case, rows, run.as_of, run.zone)
            except Exception as exc:  # one case must not stop the rule or the others
                result.rule_failed(rule.id, f"case {case['case_id']}", exc)
                continue
            if breaches:
                verdicts.findings += _findings(rule, run.source, case, breaches)
            verdicts.judged.append(case["case_id"])
        stats.seconds += time.monotonic() - started
        out.append(verdicts)
    return out


def read_steps_and_fees(
    connection: Connection, among: ChunkRows
) -> tuple[dict[str, list[StepRecord]], dict[str, list[Mapping[str, Any]]]]:
    """A chunk's steps (what the procedure rules read of them) and fees, by case."""
    return _steps_by_case(connection, among), _fees_by_case(connection, among)


def candidate_chunks(
    store: Engine,
    source: str,
    since: int | None,
    as_of: datetime,
    cases_range: tuple[str | None, str | None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The cases a pass over case rules looks at, in chunks of CHUNK_CASES, by case id:
    every case with `since` None (only those in `cases_range` if given), else those
    changed since poll `since` or whose event check is due at `as_of`."""
    touched = None if since is None else union(*case_rule_candidates(source, since, as_of))
    yield from case_chunks(store, source, CASE_COLUMNS, touched, cases_range, CHUNK_CASES)


def case_rule_candidates(source: str, since: int, as_of: datetime) -> list[Any]:
    """Queries of the case ids an incremental pass over case rules looks at: a case,
    step or fee row changed since poll `since`, or the case's event check is due at
    `as_of`. Taken together as a union of indexed lookups, not an OR of conditions:
    with the OR SQLite scanned every case of the source each cycle (a second at 1M)."""
    cases, steps, fees = schema.cases, schema.steps, schema.fees
    return [
        select(cases.c.case_id).where(cases.c.source == source, cases.c.change_seq > since),
        select(steps.c.case_id).where(steps.c.source == source, steps.c.change_seq > since),
        select(fees.c.case_id).where(fees.c.source == source, fees.c.change_seq > since),
        due_cases(source, [EVENT], as_of),
    ]


CASE_COLUMNS = ("case_id", "matter_code", "matter_name", "dept_code", "dept_name", "accepted_at")


def _steps_by_case(connection: Connection, among: ChunkRows) -> dict[str, list[StepRecord]]:
    table = schema.steps
    grouped: dict[str, list[StepRecord]] = defaultdict(list)
    query = select(
        table.c.case_id, table.c.step_id, table.c.step_code, table.c.finished_at, table.c.handler_id
    )
    rows = connection.execute(*among.where(query, table))
    for case_id, step_id, step_code, finished_at, handler_id in rows:
        grouped[case_id].append(StepRecord(step_id, step_code, finished_at, handler_id))
    return grouped


def _fees_by_case(connection: Connection, among: ChunkRows) -> dict[str, list[Mapping[str, Any]]]:
    table = schema.fees
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    rows = connection.execute(*among.where(select(table), table))
    keys = tuple(rows.keys())
    for row in rows:
        fee = dict(zip(keys, row, strict=True))
        grouped[fee["case_id"]].append(fee)
    return grouped


Breach = tuple[str, str, Mapping[str, Any]]  # finding, subject, evidence


def _procedure_breaches(
    rule: RuleSpec,
    case: Mapping[str, Any],
    steps: Mapping[str, list[Any]],
    as_of: datetime,
    _zone: ZoneInfo,
) -> list[Breach]:
    template = rule.prepared.for_matter(case["matter_code"])
    breaches = check_procedure(template, case["accepted_at"], steps.get(case["case_id"], ()), as_of)
    return [(b.finding, b.subject, b.evidence) for b in breaches] if breaches else []


def _fee_breaches(
    rule: RuleSpec,
    case: Mapping[str, Any],
    fees: Mapping[str, list[Any]],
    as_of: datetime,
    zone: ZoneInfo,
) -> list[Breach]:
    case_fees = fees.get(case["case_id"])
    if not case_fees:
        return []  # most cases: nothing charged
    check_minimum = rule.params.check_minimum
    breaches: list[Breach] = []
    for fee in case_fees:
        if fee["charged_at"] > as_of:
            continue  # not charged yet at the evaluation instant
        record = FeeRecord(
            fee_id=fee["fee_id"],
            fee_code=fee["fee_code"],
            fee_name=fee["fee_name"],
            amount=fee["amount"],
            charged_on=fee["charged_at"].astimezone(zone).date(),
            matter_code=case["matter_code"],
        )
        breaches += [
            (b.finding, b.subject, b.evidence)
            for b in check_fee(rule.prepared, record, check_minimum=check_minimum)
        ]
    return breaches


def _findings(
    rule: RuleSpec, source: str, case: Mapping[str, Any], breaches: Sequence[Breach]
) -> list[Finding]:
    """The findings of one rule on one case, graded by the rule's severities."""
    findings = []
    for finding, subject, evidence in breaches:
        severity = rule.severity_of(finding)
        if severity is None:
            continue
        findings.append(
            Finding(
                rule_id=rule.id,
                kind=rule.kind,
                finding=finding,
                source=source,
                case_id=case["case_id"],
                subject=subject,
                dept_code=case["dept_code"],
                severity=severity,
                due_date=None,
                provisional=False,
                evidence={
                    "matter_code": case["matter_code"],
                    "matter_name": case["matter_name"],
                    "dept_name": case["dept_name"],
                    **evidence,
                },
            )
        )
    return findings
