"""The `data_altered` rule kind: source revisions that weakened a recorded violation.

`watchdog.violations.reconcile` keeps a violation open, contested by a source revision,
when a pass would resolve it or find it milder only after the source changed a field
the verdict rests on (`watchdog.engine.contest`). This pass runs after the others and
reports one finding per contested open violation's case (or enterprise) and revised
field: the old and new value in plain words and the violations the change would weaken.
It derives from the stored contested violations only, so full and incremental passes
agree, and a finding stays while a violation it names stays open and contested.

A finding rests on its violations' state, grade and contest, and every change to those
is a violation event (`watchdog.violations.reconcile`). So an incremental pass rebuilds
only the cases (or enterprises) with a violation event since the last data-altered pass
(`source_state.altered_through_event`) and reconciles those keys alone; the others keep
their findings as recorded. Its cost follows the changes, not the contested history.
A full pass, a dry run, a store without that mark, and a rule come into force since the
last pass rebuild everything.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, literal_column, select, update

from watchdog.clock import Severity
from watchdog.engine.contest import KIND
from watchdog.engine.evaluate import EvaluationPass, EvaluationResult
from watchdog.engine.findings import Finding
from watchdog.engine.rulefiles import RuleSpec
from watchdog.store import schema
from watchdog.violations import OPEN, Scope, reconcile

FINDING = "data_altered"
_CHUNK = 900

FIELD_LABELS: Mapping[str, str] = {
    "cases.matter_code": "事项编码",
    "cases.applied_at": "申请时间",
    "cases.accepted_at": "受理时间",
    "cases.promised_limit": "承诺时限",
    "cases.statutory_limit": "法定时限",
    "cases.limit_unit": "时限单位",
    "cases.completed_at": "办结时间",
    "steps.step_code": "办理环节",
    "steps.handler_id": "环节办理人",
    "steps.finished_at": "环节完成时间",
    "pauses.kind": "特别程序种类",
    "pauses.started_at": "特别程序开始时间",
    "pauses.ended_at": "特别程序结束时间",
    "pauses.granted_days": "延长天数",
    "fees.fee_code": "收费项目编码",
    "fees.amount": "收费金额",
    "fees.charged_at": "收费时间",
    "inspections.target_id": "检查对象",
    "inspections.inspected_at": "检查时间",
    "inspections.kind": "检查类型",
    "inspections.joint_group": "联合检查组",
    "reviews.received_at": "评价时间",
    "reviews.rating": "评价结果",
    "reviews.replied_at": "回复时间",
}
SEVERITY_LABELS = {"warning": "预警", "yellow": "黄牌", "red": "红牌"}


def plain_value(field: str, value: str | None, zone: ZoneInfo) -> str:
    """A revision's stored text as a person reads it: local times, 空 for nothing."""
    if value is None:
        return "空"
    if field.endswith("_at"):
        try:
            return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    return value


def evaluate_altered_rules(run: EvaluationPass, rules: Sequence[RuleSpec]) -> EvaluationResult:
    """One `data_altered` finding per contested open violation's case and field."""
    started = time.monotonic()
    result = EvaluationResult(run.source)
    on = run.as_of.astimezone(run.zone).date()
    active = [rule for rule in rules if rule.kind == KIND and rule.in_force(on)]
    if not active:
        return result
    titles = {rule.id: rule.title for rule in rules}
    with run.store.connect() as connection:
        through = _latest_event(connection)
        changed = _changed_keys(connection, run, through)
        # A rule not in force at the last pass has no findings on record to keep.
        everything = [rule for rule in active if changed is None or _new_in_force(rule, run)]
        contested: list[Any] = []
        if everything:
            contested = _contested_all(connection, run.source)
        near: list[Any] = []
        if changed and len(everything) < len(active):
            near = _contested_at(connection, run.source, changed)
        outcomes = _contest_outcomes(connection, [row.id for row in [*contested, *near]])
    for rule in active:
        rule_started = time.monotonic()
        stats = result.stats(rule.id)
        severity = rule.severity_of(FINDING) or Severity.RED
        wanted: frozenset[str] = rule.prepared
        rebuilt = rule in everything
        groups: dict[tuple[str, str | None, str], list[Any]] = defaultdict(list)
        for row in contested if rebuilt else near:
            subject = f"{row.entity}.{row.field}"
            if not wanted or subject in wanted:
                groups[(row.scope_key, row.case_id, subject)].append(row)
        findings = [
            _finding(rule, run, key, members, severity, titles, outcomes)
            for key, members in groups.items()
        ]
        stats.applied += len(findings)
        if run.record:
            with run.store.begin() as connection:
                if rebuilt:
                    keys = {key for key, _, _ in groups} | set(_open_keys(connection, rule.id, run))
                else:
                    keys = set(changed or ())
                if keys:
                    counts = reconcile(
                        connection,
                        Scope(rule.id, run.source, sorted(keys)),
                        findings,
                        at=run.as_of,
                        now=run.now or run.as_of,
                        notes=dict.fromkeys(keys, "the contested violations are no longer open"),
                        listener=run.listener,
                    )
                    result.counts.add(counts)
        if run.keep_findings:
            result.findings += findings
        stats.seconds += time.monotonic() - rule_started
    if run.record:
        _mark_through(run, through)
    result.seconds = time.monotonic() - started
    return result


def _latest_event(connection: Connection) -> int:
    """The newest violation event: the pass accounts for every change up to it."""
    return int(connection.scalar(select(func.max(schema.violation_events.c.id))) or 0)


def _changed_keys(connection: Connection, run: EvaluationPass, through: int) -> list[str] | None:
    """The scope keys of the source's violations (other than data_altered ones) with an
    event since the last data-altered pass, up to `through`; None when the pass must
    look at everything (a full pass, a dry run, no pass on record)."""
    if not (run.record and run.incremental):
        return None
    state = schema.source_state
    seen = connection.scalar(
        select(state.c.altered_through_event).where(state.c.source == run.source)
    )
    if seen is None:
        return None
    v, e = schema.violations, schema.violation_events
    # A range of the events' primary key, then the violations by theirs: the changes
    # since the last pass, whatever the size of the history. Two statements, so that no
    # planner without statistics starts from the source's violations instead.
    ids = sorted(
        set(connection.scalars(select(e.c.violation_id).where(e.c.id > seen, e.c.id <= through)))
    )
    keys: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        query = select(v.c.scope_key).where(
            v.c.id.in_(ids[start : start + _CHUNK]), v.c.source == run.source, v.c.kind != KIND
        )
        keys.update(connection.scalars(query))
    return sorted(keys)


def _new_in_force(rule: RuleSpec, run: EvaluationPass) -> bool:
    return run.last is not None and not rule.in_force(run.last.astimezone(run.zone).date())


def _mark_through(run: EvaluationPass, through: int) -> None:
    """Every violation event up to `through` is reflected in the data_altered findings."""
    state = schema.source_state
    with run.store.begin() as connection:
        connection.execute(
            update(state).where(state.c.source == run.source).values(altered_through_event=through)
        )


def _open_contested(connection: Connection) -> tuple[Any, ...]:
    """The conditions of the partial index `ix_violations_open_contested`, as literals:
    a planner uses a partial index only for a query whose conditions imply the index's,
    which a bound parameter (state = ?) does not. SQLite, without statistics, took the
    index on (state, severity) instead, every open violation; `likely()` tells it that
    the state narrows little, so it searches the partial index by source and key."""
    v = schema.violations
    state: Any = v.c.state == literal_column(f"'{OPEN}'")
    if connection.dialect.name == "sqlite":
        state = func.likely(state)
    return state, v.c.contested_by_revision.is_not(None)


def _contested_columns() -> Any:
    v, r = schema.violations, schema.source_revisions
    return select(
        v.c.id,
        v.c.rule_id,
        v.c.finding,
        v.c.case_id,
        v.c.scope_key,
        v.c.subject,
        v.c.dept_code,
        v.c.severity,
        r.c.id.label("revision_id"),
        r.c.entity,
        r.c.field,
        r.c.row_key,
        r.c.old_value,
        r.c.new_value,
        r.c.seen_at,
        r.c.poll,
    ).select_from(v.join(r, v.c.contested_by_revision == r.c.id))


def _contested_all(connection: Connection, source: str) -> list[Any]:
    """Every open contested violation of the source, with the revision contesting it."""
    v = schema.violations
    query = (
        _contested_columns()
        .where(v.c.source == source, *_open_contested(connection), v.c.kind != KIND)
        .order_by(v.c.id)
    )
    return list(connection.execute(query))


def _contested_at(connection: Connection, source: str, keys: Sequence[str]) -> list[Any]:
    """The open contested violations of some scope keys, in the order of `_contested_all`."""
    v = schema.violations
    rows: list[Any] = []
    for start in range(0, len(keys), _CHUNK):
        query = _contested_columns().where(
            v.c.source == source,
            v.c.scope_key.in_(keys[start : start + _CHUNK]),
            *_open_contested(connection),
            v.c.kind != KIND,
        )
        rows += connection.execute(query)
    return sorted(rows, key=lambda row: row.id)


def _contest_outcomes(connection: Connection, ids: Iterable[int]) -> dict[int, str | None]:
    """The grade each contested violation would have had (None: none at all)."""
    events = schema.violation_events
    outcomes: dict[int, str | None] = {}
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), _CHUNK):
        query = (
            select(events.c.violation_id, events.c.severity_to)
            .where(
                events.c.violation_id.in_(wanted[start : start + _CHUNK]),
                events.c.event == "contested",
            )
            .order_by(events.c.id)
        )
        for violation_id, severity_to in connection.execute(query):
            outcomes[violation_id] = severity_to
    return outcomes


def _open_keys(connection: Connection, rule_id: str, run: EvaluationPass) -> list[str]:
    v = schema.violations
    query = select(v.c.scope_key).where(
        v.c.source == run.source, v.c.rule_id == rule_id, v.c.state == OPEN
    )
    return [key for (key,) in connection.execute(query)]


def _finding(
    rule: RuleSpec,
    run: EvaluationPass,
    key: tuple[str, str | None, str],
    members: list[Any],
    severity: Severity,
    titles: Mapping[str, str],
    outcomes: Mapping[int, str | None],
) -> Finding:
    scope_key, case_id, subject = key
    latest = max(members, key=lambda row: row.revision_id)
    label = FIELD_LABELS.get(subject, subject)
    old = plain_value(latest.field, latest.old_value, run.zone)
    new = plain_value(latest.field, latest.new_value, run.zone)
    weakened = []
    effects = []
    for row in members:
        title = titles.get(row.rule_id, row.rule_id)
        now = outcomes.get(row.id)
        grade = SEVERITY_LABELS.get(row.severity, row.severity)
        effect = f"降为{SEVERITY_LABELS.get(now, now)}" if now else "不再成立"
        effects.append(f"“{title}”（{grade}，违规记录 {row.id}）将{effect}")
        weakened.append(
            {
                "violation_id": row.id,
                "rule_id": row.rule_id,
                "finding": row.finding,
                "subject": row.subject,
                "severity": row.severity,
                "severity_after_change": now,
            }
        )
    what = f"办件 {case_id}" if case_id else f"检查对象 {scope_key}"
    summary = (
        f"{what}的{label}（{latest.entity} {latest.row_key}）在监察系统记录违规后被数据源修改："
        f"由 {old} 改为 {new}。按修改后的数据，" + "；".join(effects) + "。"
        "原违规记录继续保留并标记为存疑，请核实修改依据。"
    )
    return Finding(
        rule_id=rule.id,
        kind=KIND,
        finding=FINDING,
        source=run.source,
        case_id=case_id,
        subject=subject,
        dept_code=members[0].dept_code,
        severity=severity,
        due_date=None,
        provisional=False,
        evidence={
            "summary": summary,
            "field": subject,
            "field_label": label,
            "row_key": latest.row_key,
            "old_value": old,
            "new_value": new,
            "revision_id": latest.revision_id,
            "revision_seen_at": latest.seen_at.isoformat(),
            "weakens": weakened,
        },
        target_id=None if case_id else scope_key,
    )
