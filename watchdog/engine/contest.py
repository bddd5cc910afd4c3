"""Which source revisions contest a violation that a pass would resolve or find milder.

Used by `watchdog.violations.reconcile` (so it imports nothing of the engine's): a
stored violation that a pass no longer finds, or finds milder, is contested instead
of resolved when a source revision explains it (`altering_revisions`). The
`data_altered` rule kind (`watchdog.engine.altered`) then reports the revision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from watchdog.sources.revisions import DECIDING
from watchdog.store import schema

KIND = "data_altered"
_CHUNK = 900


def _of(entity: str, *names: str) -> frozenset[str]:
    return frozenset(f"{entity}.{name}" for name in (names or DECIDING[entity]))


ALL_FIELDS = frozenset().union(*(_of(entity) for entity in DECIDING))
# Which revised fields a rule kind's verdict can rest on. A violation found milder or
# not at all is contested only by a revision of one of these: a changed handler does not
# explain an overdue warning that cleared. Kinds not listed: every deciding field.
FIELDS_BY_KIND: Mapping[str, frozenset[str]] = {
    "overdue": _of(
        "cases", "accepted_at", "promised_limit", "statutory_limit", "limit_unit", "completed_at"
    )
    | _of("pauses"),
    "procedure": _of("cases", "accepted_at", "matter_code") | _of("steps"),
    "fee": _of("cases", "matter_code") | _of("fees"),
    "inspection": _of("inspections"),
    "pattern": _of("cases") | _of("steps") | _of("fees") | _of("pauses"),
    KIND: frozenset(),  # a data_altered finding is about the revision itself
}


def altering_revisions(connection: Connection, source: str, rows: Sequence[Any]) -> dict[int, Any]:
    """For stored violation rows (with `id`, `kind`, `scope_key`), the latest source
    revision since the source's last evaluation that may explain a weaker verdict, by
    violation id. Violations without one are missing from the result."""
    if not rows:
        return {}
    revisions, state = schema.source_revisions, schema.source_state
    evaluated = select(state.c.evaluated_seq).where(state.c.source == source).scalar_subquery()
    keys = sorted({row.scope_key for row in rows})
    by_key: dict[str, list[Any]] = defaultdict(list)
    for start in range(0, len(keys), _CHUNK):
        query = (
            select(revisions)
            .where(
                revisions.c.source == source,
                revisions.c.scope_key.in_(keys[start : start + _CHUNK]),
                revisions.c.poll > evaluated,
            )
            .order_by(revisions.c.id)
        )
        for revision in connection.execute(query):
            by_key[revision.scope_key].append(revision)
    found: dict[int, Any] = {}
    for row in rows:
        relevant = FIELDS_BY_KIND.get(row.kind, ALL_FIELDS)
        for revision in by_key.get(row.scope_key, ()):
            if f"{revision.entity}.{revision.field}" in relevant:
                found[row.id] = revision  # ordered by id: the latest wins
    return found


def contest_reason(revision: Any, severity_now: str | None) -> str:
    """The `contested` event's reason: which change, and what it would have done."""
    outcome = f"downgraded to {severity_now}" if severity_now else "resolved"
    return (
        f"source revision {revision.id}: {revision.entity}.{revision.field} of "
        f"{revision.row_key} changed from {revision.old_value} to {revision.new_value} "
        f"(poll {revision.poll}); without it the violation would not be {outcome}"
    )
