"""Printing findings and violations for people (aligned tables) and tools (JSON lines)."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from watchdog.engine.findings import Finding

SEVERITY_LABELS = {"warning": "预警", "yellow": "黄牌", "red": "红牌"}


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(
        findings,
        key=lambda f: (f.source, f.rule_id, f.case_id or "", f.finding, f.subject or ""),
    )


def write_jsonl(findings: Iterable[Finding], out: TextIO) -> None:
    for finding in sort_findings(findings):
        out.write(json.dumps(finding.as_record(), ensure_ascii=False) + "\n")


def display_width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for number, row in enumerate(cells):
        padded = [cell + " " * (widths[i] - display_width(cell)) for i, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def findings_table(findings: Iterable[Finding]) -> str:
    rows = []
    for f in sort_findings(findings):
        evidence = f.evidence
        rows.append(
            (
                f.source,
                f.case_id,
                evidence.get("dept_name") or f.dept_code,
                evidence.get("matter_name"),
                SEVERITY_LABELS[f.severity.value],
                f.due_date,
                _status(f),
                "是" if f.provisional else "",
            )
        )
    headers = ("来源", "办件编号", "部门", "事项", "等级", "承诺期限", "情况", "临时")
    return format_table(headers, rows)


def _status(finding: Finding) -> str:
    """What the finding is, in a few words: days late or left, or the finding and subject."""
    if finding.kind == "overdue":
        late = finding.evidence.get("days_late")
        return f"超期 {late} 天" if late else f"剩余 {finding.evidence.get('remaining_days')} 天"
    return f"{finding.finding}: {finding.subject}" if finding.subject else finding.finding


def severity_summary(findings: Iterable[Finding]) -> str:
    """Counts by department and severity, the shape of the wall display."""
    by_dept: dict[str, Counter[str]] = {}
    for f in findings:
        name = str(f.evidence.get("dept_name") or f.dept_code)
        by_dept.setdefault(name, Counter())[f.severity.value] += 1
    rows = [
        (name, c["warning"], c["yellow"], c["red"], sum(c.values()))
        for name, c in sorted(by_dept.items(), key=lambda item: -sum(item[1].values()))
    ]
    totals = Counter[str]()
    for c in by_dept.values():
        totals.update(c)
    rows.append(("合计", totals["warning"], totals["yellow"], totals["red"], sum(totals.values())))
    return format_table(("部门", "预警", "黄牌", "红牌", "合计"), rows)
