"""What a rule reports: a finding, identified by a stable fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from watchdog.clock import Severity


@dataclass(frozen=True)
class Finding:
    """One rule breach as found at one evaluation.

    The fingerprint names the breach, not its grade: the same overdue case found as a
    warning today and as a red card next week is one violation that was upgraded.
    """

    rule_id: str
    kind: str
    finding: str
    source: str
    case_id: str | None
    subject: str | None
    dept_code: str | None
    severity: Severity
    due_date: date | None
    provisional: bool
    evidence: Mapping[str, Any] = field(default_factory=dict)
    target_id: str | None = None  # the enterprise, for findings not about one case

    @property
    def scope_key(self) -> str:
        """The case, or for findings without one the enterprise, this finding is about."""
        return self.case_id or self.target_id or ""

    @property
    def fingerprint(self) -> str:
        parts = (self.rule_id, self.source, self.case_id or "", self.finding, self.subject or "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def as_record(self) -> dict[str, Any]:
        """The `evaluate --format jsonl` contract: one JSON object per violation."""
        return {
            "kind": self.kind,
            "finding": self.finding,
            "rule": self.rule_id,
            "source": self.source,
            "case_id": self.case_id,
            "subject": self.subject,
            "severity": self.severity.value,
            "dept_code": self.dept_code,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "provisional": self.provisional,
            "evidence": dict(self.evidence),
        }
