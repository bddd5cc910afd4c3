"""Printing a backtest (`watchdog rules test`) for the supervisor reviewing a rule change.

Three sections: what the rules would add, what they would no longer find, and the
violations whose grade would differ; each with its count per finding code and its first
rows (case, department, subject, severity).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TextIO

from watchdog.app import build_calendar
from watchdog.config import Settings
from watchdog.engine.backtest import BacktestResult, Entry, SeverityChange, run_backtest
from watchdog.engine.rulefiles import load_rule_file
from watchdog.report import format_table
from watchdog.sources.poller import utc_now
from watchdog.store.database import create_store_engine, require_current_schema

_Extra = Callable[[Entry], tuple[str, ...]]  # the columns a section adds to each row


def rules_test(
    settings: Settings,
    rule_file: Path,
    *,
    start: date | None,
    end: date | None,
    limit: int,
    out: TextIO | None = None,
) -> int:
    """`watchdog rules test`: load the file, backtest it, print; 1 if the file is broken
    or a rule pass failed."""
    out = out or sys.stdout
    loaded = load_rule_file(rule_file, settings.rules_dir)
    if loaded.problems:
        for problem in loaded.problems:
            print(f"{rule_file.parent}/{problem}", file=out)
        print(f"{rule_file}: not tested, {len(loaded.problems)} problem(s)", file=sys.stderr)
        return 1
    calendar = build_calendar(settings)
    store = create_store_engine(settings.store_url)
    try:
        require_current_schema(store)
        result = run_backtest(
            store,
            settings.sources,
            calendar,
            loaded.rules,
            start=start,
            end=end,
            now=utc_now(),
        )
    finally:
        store.dispose()
    print(backtest_text(result, rule_file, limit), file=out)
    return 1 if result.errors else 0


def backtest_text(result: BacktestResult, rule_file: Path, limit: int) -> str:
    """The whole report, ending without a newline."""
    lines = [_heading(result, rule_file)]
    for run in result.sources:
        lines.append(
            f'source "{run.source}" at {run.as_of.isoformat(sep=" ")}: '
            f"{run.found} finding(s), {run.recorded} open violation(s) on record"
        )
    lines += [f"note: {note}" for note in result.notes]
    lines += [f"error: {error}" for error in result.errors]
    lines += _section("would add", result.added, limit)
    lines += _section("would no longer find", result.removed, limit)
    lines += _changes(result.changed, limit)
    lines += [
        "",
        f"summary: {len(result.added)} to add, {len(result.removed)} no longer found, "
        f"{len(result.changed)} severity change(s), {result.unchanged} unchanged",
    ]
    return "\n".join(lines)


def _heading(result: BacktestResult, rule_file: Path) -> str:
    ids = ", ".join(rule.id for rule in result.rules)
    if result.start or result.end:
        start = result.start.isoformat() if result.start else "the beginning"
        end = result.end.isoformat() if result.end else "now"
        window = f"cases accepted and inspections made from {start} to {end}"
    else:
        window = "all stored cases and inspections"
    return f"backtest of {rule_file} (rules: {ids}) over {window}; nothing is written"


def _section(title: str, entries: Sequence[Entry], limit: int) -> list[str]:
    lines = ["", f"{title}: {len(entries)}"]
    if not entries:
        return lines
    lines.append(_counts(entries))
    lines.append("")
    lines.append(_rows(entries[:limit], ("severity",), lambda e: (e.severity.value,)))
    if len(entries) > limit:
        lines.append(f"... and {len(entries) - limit} more")
    return lines


def _changes(changes: Sequence[SeverityChange], limit: int) -> list[str]:
    lines = ["", f"severity changes: {len(changes)}"]
    if not changes:
        return lines
    milder = sum(change.milder for change in changes)
    if milder:
        lines.append(
            f"({milder} milder: a violation keeps the grade it reached, so those stay as "
            "they are on record; new ones get the milder grade)"
        )
    lines.append(_counts([c.found for c in changes]))
    lines.append("")
    shown = changes[:limit]
    recorded = {c.found.fingerprint: c.recorded.severity.value for c in shown}
    lines.append(
        _rows(
            [c.found for c in shown],
            ("on record", "would be"),
            lambda e: (recorded[e.fingerprint], e.severity.value),
        )
    )
    if len(changes) > limit:
        lines.append(f"... and {len(changes) - limit} more")
    return lines


def _counts(entries: Sequence[Entry]) -> str:
    counts = Counter((e.rule_id, e.finding) for e in entries)
    rows = [(rule, finding, n) for (rule, finding), n in sorted(counts.items())]
    return format_table(("rule", "finding", "count"), rows)


def _rows(entries: Sequence[Entry], extra: Sequence[str], values: _Extra) -> str:
    headers = ("source", "rule", "finding", "case", "dept", "subject", *extra)
    rows = [
        (
            e.source,
            e.rule_id,
            e.finding,
            e.case_id or "-",
            e.dept_name or e.dept_code,
            e.subject,
            *values(e),
        )
        for e in entries
    ]
    return format_table(headers, rows)
