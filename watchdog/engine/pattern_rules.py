"""Evaluation of the pattern rules (event correlation within one case) over a source.

The cases a pass looks at are those of the case rules (`candidate_chunks`: changed
since the last pass, or with a row that has come into effect since), plus, in an
incremental pass, the cases whose pauses changed (pattern rules may read pauses). Each
chunk's case rows, steps, fees and pauses are read with one query each and turned into
facts as they stood at the pass's instant (rows dated later have not happened yet).
Each rule in force then has its own durable-rules worker (`PatternHost`) judge the
chunk's cases, and its findings are reconciled per chunk with the cases it judged.

A case the engine fails on is recorded with the rule and the case and left out of the
rule's reconciled scope (its violations stay as they were); the other cases and rules
go on. Where durable-rules cannot be imported (Python 3.13), the rules do not load at
all (see `kinds._prepare_pattern`), and a pass that still meets one says so once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, bindparam, or_, select

from watchdog.clock import Severity
from watchdog.engine.case_rules import candidate_chunks
from watchdog.engine.chunks import ChunkRows, chunk_rows
from watchdog.engine.evaluate import (
    CHUNK_CASES,
    EvaluationPass,
    EvaluationResult,
    RuleVerdicts,
    record_verdicts,
)
from watchdog.engine.findings import Finding
from watchdog.engine.patterns import (
    FACT_TYPES,
    NUMBER,
    TEXT,
    TIME,
    Pattern,
    PatternHost,
    engine_unavailable,
)
from watchdog.engine.rulefiles import RuleSpec
from watchdog.store import schema

log = logging.getLogger(__name__)

Row = Mapping[str, Any]


class PatternCaseError(RuntimeError):
    """durable-rules failed on one case (an exception in the engine, or its crash)."""


class CaseFacts:
    """One case's facts for the engine and, by fact id, the rows they came from."""

    def __init__(self) -> None:
        self.facts: list[dict[str, Any]] = []
        self.rows: dict[str, tuple[str, dict[str, Any]]] = {}

    def add(self, fact_type: str, row: Mapping[str, Any]) -> None:
        fact: dict[str, Any] = {"id": f"{fact_type}:{row[_KEYS[fact_type]]}", "t": fact_type}
        for name, sort in _FIELDS[fact_type]:
            value = row.get(name)
            if value is None:
                continue  # absent, so that $ex / $nex can test it
            if sort == TIME:
                value = int(value.timestamp())
            elif sort == NUMBER and isinstance(value, Decimal):
                value = float(value)
            fact[name] = value
        self.facts.append(fact)
        self.rows[fact["id"]] = (fact_type, dict(row))


_TABLES = {"case": schema.cases, "step": schema.steps, "fee": schema.fees, "pause": schema.pauses}
_KEYS = {name: spec.key for name, spec in FACT_TYPES.items()}
# "case_id IN :ids", the list given at execution: compiled once and cached, where a list
# of literals was coerced and compiled again for every chunk.
_AMONG = {
    table: table.c.case_id.in_(bindparam("ids", expanding=True)) for table in _TABLES.values()
}
_FIELDS = {name: tuple(spec.fields.items()) for name, spec in FACT_TYPES.items()}
# What a fact is made of (its case, key and fields), not the whole row: every time column
# read costs a conversion (`updated_at` of every step, say).
_COLUMNS = {
    _TABLES[name]: [
        _TABLES[name].c[column]
        for column in dict.fromkeys(("case_id", spec.key, *spec.fields))
        if column in _TABLES[name].c
    ]
    for name, spec in FACT_TYPES.items()
}


def active_pattern_rules(run: EvaluationPass, rules: Sequence[RuleSpec]) -> list[RuleSpec]:
    on = run.as_of.astimezone(run.zone).date()
    return [rule for rule in rules if rule.kind == "pattern" and rule.in_force(on)]


def evaluate_pattern_rules(run: EvaluationPass, rules: Sequence[RuleSpec]) -> EvaluationResult:
    """Apply the pattern rules in force at the pass's instant to its cases."""
    started = time.monotonic()
    result = EvaluationResult(run.source)
    active = active_pattern_rules(run, rules)
    if not active or not pattern_engine_available(run.source, result):
        return result
    with ExitStack() as stack:
        judges = PatternJudges(stack, run, active)
        for chunk in _chunks(run):
            case_ids = [case["case_id"] for case in chunk]
            # A full pass's chunks are runs of consecutive case ids (`chunk_rows`).
            among = chunk_rows(run.source, case_ids, contiguous=not run.incremental)
            with run.store.begin() if run.record else run.store.connect() as connection:
                verdicts = judges.judge(run, connection, chunk, among, result)
                if run.record:
                    record_verdicts(connection, run, verdicts, among.bounds, result)
            if run.keep_findings:
                result.findings += [finding for verdict in verdicts for finding in verdict.findings]
            result.cases_evaluated += len(chunk)
    result.seconds = time.monotonic() - started
    return result


def pattern_engine_available(source: str, result: EvaluationResult) -> bool:
    """Whether durable-rules can run here; if not, say so once, as an error of the pass."""
    unavailable = engine_unavailable()
    if unavailable is not None:
        log.error('source "%s": %s', source, unavailable)
        result.errors.append(unavailable)
    return unavailable is None


class PatternJudges:
    """The pattern rules in force, each with its durable-rules worker (`PatternHost`),
    judging chunks of cases. A worker starts with the first case its rule may match:
    often never, in an incremental pass. Workers are the pass's `pattern_hosts` when it
    has them (kept from one cycle to the next), else their own, stopped with `stack`."""

    def __init__(self, stack: ExitStack, run: EvaluationPass, active: Sequence[RuleSpec]) -> None:
        self.active = list(active)
        self.types = frozenset().union(*(rule.prepared.fact_types for rule in active))
        kept = run.pattern_hosts
        self.hosts = {
            rule.id: stack.enter_context(
                kept.using(rule.prepared.ruleset)
                if kept is not None
                else PatternHost(rule.prepared.ruleset)
            )
            for rule in active
        }

    def judge(
        self,
        run: EvaluationPass,
        connection: Connection,
        chunk: Sequence[Row],
        among: ChunkRows,
        result: EvaluationResult,
    ) -> list[RuleVerdicts]:
        """Each rule's verdicts on a chunk of cases (`among` selects their rows)."""
        # Read rows only of the cases some rule may match (most cases match none).
        maybe = set().union(*(_may_match(connection, among, rule) for rule in self.active))
        # Only these are looked at again, rule by rule: the chunk's other cases have no
        # facts a rule could match (a loop over all of them was 3 of ~100 CPU-seconds
        # of a full evaluation at 1M cases).
        needed = {case["case_id"]: case for case in chunk if case["case_id"] in maybe}
        facts = _facts(connection, run.source, list(needed), run.as_of, self.types)
        case_ids = [case["case_id"] for case in chunk]
        out = []
        for rule in self.active:
            started = time.monotonic()
            findings, failed = _judge(
                result, rule, self.hosts[rule.id], run.source, needed, facts, run.zone
            )
            result.stats(rule.id).applied += len(chunk)
            judged = (
                [case_id for case_id in case_ids if case_id not in failed]
                if failed
                else list(case_ids)
            )
            out.append(RuleVerdicts(rule.id, findings, judged))
            result.stats(rule.id).seconds += time.monotonic() - started
        return out


def _judge(
    result: EvaluationResult,
    rule: RuleSpec,
    host: PatternHost,
    source: str,
    cases: Mapping[str, Row],
    facts: Mapping[str, CaseFacts],
    zone: ZoneInfo,
) -> tuple[list[Finding], set[str]]:
    """One rule on the cases of a chunk that have facts (`cases`, by id, in the chunk's
    order): its findings and the cases it failed on."""
    pattern: Pattern = rule.prepared
    posted = []
    for case_id in cases:
        case_facts = facts.get(case_id)
        if case_facts is None:
            continue  # nothing left at the instant (rows dated later)
        engine_facts = pattern.engine_facts(case_facts.facts)
        if engine_facts:  # the others cannot match: no need to ask the engine
            posted.append((case_id, engine_facts))
    findings: list[Finding] = []
    failed: set[str] = set()
    for outcome in host.evaluate(posted):
        if outcome.error is not None:
            failed.add(outcome.case_id)
            try:
                raise PatternCaseError(outcome.error)
            except PatternCaseError as exc:
                result.rule_failed(rule.id, f"case {outcome.case_id}", exc)
            continue
        case = cases[outcome.case_id]
        findings += _findings(rule, source, case, facts[outcome.case_id], outcome.matches, zone)
    return findings, failed


def _findings(
    rule: RuleSpec,
    source: str,
    case: Row,
    facts: CaseFacts,
    matches: list[dict[str, str]],
    zone: ZoneInfo,
) -> list[Finding]:
    """One finding per subject fact; of several matches for one subject, the one with the
    smallest fact ids, so that a pass gives the same evidence whatever the engine's order."""
    pattern: Pattern = rule.prepared
    chosen: dict[str, dict[str, str]] = {}
    for match in sorted(matches, key=lambda m: sorted(m.items())):
        subject_fact = match.get(pattern.subject) or next(iter(match.values()))
        chosen.setdefault(subject_fact, match)
    findings = []
    for subject_fact, match in sorted(chosen.items()):
        fact_type, row = facts.rows[subject_fact]
        matched = {name: facts.rows[fact_id] for name, fact_id in match.items()}
        findings.append(
            Finding(
                rule_id=rule.id,
                kind="pattern",
                finding=pattern.finding,
                source=source,
                case_id=case["case_id"],
                subject=str(row[FACT_TYPES[fact_type].key]),
                dept_code=case["dept_code"],
                severity=Severity(pattern.severity),
                due_date=None,
                provisional=False,
                evidence={
                    "matter_code": case["matter_code"],
                    "matter_name": case["matter_name"],
                    "dept_name": case["dept_name"],
                    "description": _describe(pattern, matched, zone),
                    "matched": {
                        name: {"type": kind, **_plain_row(kind, values, zone)}
                        for name, (kind, values) in matched.items()
                    },
                },
            )
        )
    return findings


def _describe(
    pattern: Pattern, matched: Mapping[str, tuple[str, dict[str, Any]]], zone: ZoneInfo
) -> str:
    """The finding in plain words: the rule's evidence text with its placeholders filled."""
    values = {name: _Fields(_plain_row(kind, row, zone)) for name, (kind, row) in matched.items()}
    if not pattern.evidence:
        return "；".join(
            f"{name}: {kind} {row[FACT_TYPES[kind].key]}" for name, (kind, row) in matched.items()
        )
    return pattern.evidence.format_map(values)


class _Fields:
    """Attribute access for `{name.field}` placeholders; a field without value reads （无）."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> str:
        value = self._values.get(name)
        return "（无）" if value is None else str(value)


def _plain_row(fact_type: str, row: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """A row's canonical fields for people: local times to the minute, amounts as text."""
    out: dict[str, Any] = {}
    for name in FACT_TYPES[fact_type].fields:
        value = row.get(name)
        if isinstance(value, datetime):
            value = value.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        elif isinstance(value, Decimal):
            value = f"{value:f}"
        out[name] = value
    return out


# ---------------------------------------------------------------------------------------
# Reading a chunk


def _chunks(run: EvaluationPass) -> Iterator[Sequence[Row]]:
    """The case-rule candidates, then (incremental) the cases whose pauses alone changed."""
    seen: set[str] = set()
    since = run.since if run.incremental else None
    for chunk in candidate_chunks(run.store, run.source, since, run.as_of, run.cases):
        seen.update(case["case_id"] for case in chunk)
        yield chunk
    if since is None:
        return
    pauses = schema.pauses
    changed = select(pauses.c.case_id).where(
        pauses.c.source == run.source, pauses.c.change_seq > since
    )
    with run.store.connect() as connection:
        extra = sorted(set(connection.scalars(changed.distinct())) - seen)
    for start in range(0, len(extra), CHUNK_CASES):
        yield _case_rows(run.store, run.source, extra[start : start + CHUNK_CASES])


def _case_rows(store: Engine, source: str, case_ids: list[str]) -> list[Row]:
    cases = schema.cases
    query = select(cases).where(cases.c.source == source, cases.c.case_id.in_(case_ids))
    with store.connect() as connection:
        result = connection.execute(query.order_by(cases.c.case_id)).mappings()
        return [dict(row) for row in result]


def _may_match(connection: Connection, chunk: ChunkRows, rule: RuleSpec) -> set[str]:
    """The cases that have, for every condition of an `all` rule (for one of an `any`
    rule), a row passing the condition's tests that SQL can say (equalities on text and
    number fields, `$and`, `$or`): a necessary condition, found with one indexed query
    per condition instead of reading every row."""
    pattern: Pattern = rule.prepared
    tests = [
        (condition, _sql(condition.test, _TABLES[condition.fact_type], condition.sorts))
        for condition in pattern.conditions
    ]
    if pattern.mode == "all":
        # The conditions SQL can narrow first; each later query looks only at the cases
        # still in the running, so a selective condition makes the others cheap.
        tests.sort(key=lambda test: test[1] is None)
    found: set[str] | None = None
    for condition, where in tests:
        if pattern.mode == "all" and found is not None and not found:
            break
        table = _TABLES[condition.fact_type]
        among = chunk
        if pattern.mode == "all" and found is not None:  # the cases still in the running
            among = chunk_rows(chunk.source, sorted(found), contiguous=False)
        query = select(table.c.case_id)
        if where is not None:
            query = query.where(where)
        query, parameters = among.where(query.distinct(), table)
        # A range may also find rows of cases outside the chunk: the caller keeps its own.
        ids = set(connection.scalars(query, parameters))
        found = (found or set()) | ids if pattern.mode == "any" else ids
    return found or set()


def _sql(test: Mapping[str, Any], table: Any, sorts: Mapping[str, str]) -> Any:
    """The part of a condition's test SQL can say, or None for "no restriction"."""
    key, value = next(iter(test.items()))
    if key in ("$and", "$or"):
        parts = [_sql(part, table, sorts) for part in value]
        if key == "$and":
            known = [part for part in parts if part is not None]
            return and_(*known) if known else None
        return None if any(part is None for part in parts) else or_(*parts)
    sort = sorts.get(key)
    if key.startswith("$") or sort is None or key not in table.c:
        return None  # operators, `t`, `seq`: left to the host and the engine
    if sort == TEXT and isinstance(value, str):
        return table.c[key] == value
    if sort == NUMBER and isinstance(value, int | float) and not isinstance(value, bool):
        return table.c[key] == value
    return None


def _facts(
    connection: Connection,
    source: str,
    case_ids: list[str],
    as_of: datetime,
    types: frozenset[str],
) -> dict[str, CaseFacts]:
    """Each case's facts of `types` as they stood at `as_of`: later times have not
    happened yet."""
    out: dict[str, CaseFacts] = defaultdict(CaseFacts)
    read = {
        name: _rows(connection, table, source, case_ids) if name in types and case_ids else []
        for name, table in _TABLES.items()
    }
    for row in read["case"]:
        case = {key: _until(value, as_of) for key, value in row.items()}
        if case["completed_at"] is None:
            case["result"] = None  # not decided yet at the instant
        out[row["case_id"]].add("case", case)
    steps = read["step"]
    finished = [s for s in steps if s["finished_at"] is not None and s["finished_at"] <= as_of]
    finished.sort(key=lambda s: (s["case_id"], s["finished_at"], s["step_id"]))
    seq: dict[str, int] = defaultdict(int)
    for step in finished:
        seq[step["case_id"]] += 1
        out[step["case_id"]].add("step", {**step, "seq": seq[step["case_id"]]})
    for fee in read["fee"]:
        if fee["charged_at"] <= as_of:
            out[fee["case_id"]].add("fee", fee)
    for pause in read["pause"]:
        if pause["started_at"] <= as_of:
            out[pause["case_id"]].add(
                "pause", {**pause, "ended_at": _until(pause["ended_at"], as_of)}
            )
    return out


def _rows(
    connection: Connection, table: Any, source: str, case_ids: list[str]
) -> list[dict[str, Any]]:
    query = select(*_COLUMNS[table]).where(table.c.source == source, _AMONG[table])
    result = connection.execute(query, {"ids": case_ids})
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def _until(value: Any, as_of: datetime) -> Any:
    """A time after the instant has not happened yet."""
    return None if isinstance(value, datetime) and value > as_of else value
