"""Rectification notices (整改通知书): issuing, numbering, content, lifecycle, escalation.

`NoticeService` is what the application wires in: its `listener` hears every violation
change in the transaction that records it (immediate policy), and `run_scheduled` is
called at the end of every cycle for what is due by the clock (daily digests,
escalations). Delivery (the senders and the outbox worker) reads the `deliveries` rows
written here and reports back through `lifecycle.mark_delivered`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from watchdog.calendar import WorkCalendar
from watchdog.engine.rulefiles import RuleSet
from watchdog.notices.escalation import escalate_overdue
from watchdog.notices.issuing import NoticeIssuer
from watchdog.notices.settings import NoticeSettings

log = logging.getLogger(__name__)


@dataclass
class ScheduledResult:
    """What one scheduled step did: digests issued, notices escalated, and failures."""

    digests: int = 0
    escalated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class NoticeService:
    """The notices of one watchdog: built at start (templates checked then)."""

    def __init__(
        self, settings: NoticeSettings, calendar: WorkCalendar, rules: Callable[[], RuleSet]
    ) -> None:
        self.settings = settings
        self.issuer = NoticeIssuer(settings, calendar, rules)
        self.listener = self.issuer.listener
        self.failures = 0  # scheduled steps that failed since start
        self.last_error: str | None = None

    def run_scheduled(self, store: Engine, now: datetime) -> ScheduledResult:
        """Issue due digests, then escalate overdue notices. Each step is isolated:
        a failure is logged and recorded here and never stops the other step."""
        result = ScheduledResult()
        try:
            result.digests = self.issuer.issue_due_digests(store, now)
        except Exception as exc:
            log.exception("notices: daily digest failed")
            result.errors.append(f"digest: {type(exc).__name__}: {exc}")
        try:
            escalation = escalate_overdue(store, self.issuer, now)
            result.escalated = escalation.escalated
            result.errors += escalation.errors
        except Exception as exc:
            log.exception("notices: escalation failed")
            result.errors.append(f"escalation: {type(exc).__name__}: {exc}")
        if result.errors:
            self.failures += 1
            self.last_error = result.errors[-1]
        return result


def start_notices(
    settings: NoticeSettings, calendar: WorkCalendar, rules: Callable[[], RuleSet]
) -> NoticeService | None:
    """The notice service when notices are enabled, else None. Raises ConfigError when
    a template cannot render a sample of every finding kind."""
    return NoticeService(settings, calendar, rules) if settings.enabled else None
