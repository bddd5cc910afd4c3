"""Issuing notices: which violations get one, when, to whom, and what is written.

A notice is written in one transaction with everything that makes it real: its number
(drawn from the counter), its rendered subject and bodies (the record of what was
sent), the violations it is about, one outbox row per recipient (`deliveries`, state
"pending", for the delivery side to send) and its "issued" event.

Policies (`[notices] policy`):

- `immediate`: `NoticeIssuer.listener` is the violation listener; it issues inside the
  transaction that records the violation change, so the notice and the violation
  commit or roll back together.
- `daily_digest`: the listener records nothing; `issue_due_digests`, called at every
  cycle, issues one notice per department for the violations that were not noticed
  yet and were recorded before the latest digest time (`digest_at`, local).

A violation gets a notice when its severity is one of `severities` and it has no
rectification notice of that severity or graver yet. So an upgrade yellow → red gets
a new notice that refers to the yellow one; a violation reopened at the grade it was
noticed at does not get a second one (its first notice is still being handled).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, exists, func, insert, or_, select, text

from watchdog.audit.chain import lock_chain
from watchdog.audit.hooks import record_notice_event
from watchdog.calendar import WorkCalendar
from watchdog.engine.rulefiles import RuleSet
from watchdog.notices.numbering import draw_number, format_number
from watchdog.notices.render import (
    NoticeContext,
    NoticeItem,
    NoticeRenderer,
    NoticeView,
    OriginalView,
)
from watchdog.notices.settings import NoticeSettings
from watchdog.notices.wording import (
    SEVERITY_LABELS,
    describe,
    finding_label,
    matter_text,
)
from watchdog.store import schema
from watchdog.violations import ViolationChange

log = logging.getLogger(__name__)

RECTIFICATION = "rectification"
ESCALATION = "escalation"
ISSUED = "issued"
ACTOR = "watchdog"
RANK = {"warning": 1, "yellow": 2, "red": 3}
_NOTICED_EVENTS = ("opened", "upgraded", "reopened")
# Serialises digest runs of several daemons sharing one PostgreSQL store (taken per
# transaction, released at its end); any fixed 64-bit key no other lock uses.
_DIGEST_LOCK = 7_310_052_001
_CHUNK = 900  # ids per IN (...) list: below SQLite's default bound-parameter limit


@dataclass(frozen=True)
class Recipients:
    """Who a notice goes to; `note` is the line saying why it went elsewhere."""

    to: tuple[str, ...]
    cc: tuple[str, ...]
    note: str | None = None


@dataclass(frozen=True)
class PriorNotice:
    """The latest rectification notice of a violation."""

    id: int
    number: str
    severity: str


def rectification_recipients(
    settings: NoticeSettings, dept_code: str, dept_name: str
) -> Recipients:
    """The department's contacts with the supervision office in copy; a department
    without contacts sends to the supervision office, and the notice says so."""
    office = settings.supervision_office
    contacts = settings.contacts.get(dept_code, ())
    if not contacts:
        note = (
            f"{dept_name}（部门编码 {dept_code}）未在监察系统登记联系人，"
            "本通知书发送至监察机关，请监察机关转交该部门。"
        )
        return Recipients(office, (), note)
    return Recipients(contacts, tuple(a for a in office if a not in contacts))


def escalation_recipients(settings: NoticeSettings, dept_code: str) -> Recipients:
    to = settings.escalation_recipients(dept_code)
    return Recipients(to, tuple(a for a in settings.supervision_office if a not in to))


def local_date(moment: datetime, settings: NoticeSettings) -> date:
    return moment.astimezone(settings.timezone).date()


class NoticeIssuer:
    """Builds, renders and stores notices; see the module docstring for the policies."""

    def __init__(
        self,
        settings: NoticeSettings,
        calendar: WorkCalendar,
        rules: Callable[[], RuleSet],
        renderer: NoticeRenderer | None = None,
    ) -> None:
        self.settings = settings
        self.calendar = calendar
        self.rules = rules
        self.renderer = renderer or NoticeRenderer(settings.templates)
        # At start, not at the first notice: a template naming a variable the notices
        # do not have must stop the daemon, not blank a line in a sent mail.
        self.renderer.check()

    # -- immediate policy -------------------------------------------------------------

    def listener(self, connection: Connection, changes: Sequence[ViolationChange]) -> None:
        """The violation listener: under the immediate policy, issue a notice for each
        change that needs one, in the transaction that records the change."""
        if self.settings.policy != "immediate":
            return
        wanted = {
            change.violation_id: change
            for change in changes
            if change.event in _NOTICED_EVENTS and change.severity_to in self.settings.severities
        }
        if not wanted:
            return
        rows = load_violations(connection, list(wanted))
        prior = latest_notices(connection, list(wanted))
        issued = 0
        for row in rows:
            earlier = prior.get(row.id)
            if earlier is not None and RANK[earlier.severity] >= RANK[row.severity]:
                continue
            self.issue(connection, [row], at=wanted[row.id].at, prior=prior)
            issued += 1
        if issued:
            log.info("issued %d notice(s) for violations recorded now", issued)

    # -- daily digest policy ----------------------------------------------------------

    def digest_cutoff(self, now: datetime) -> datetime:
        """The latest digest time at or before `now` (today's, or yesterday's)."""
        zone = self.settings.timezone
        local = now.astimezone(zone)
        today = datetime.combine(local.date(), self.settings.digest_at, tzinfo=zone)
        return today if local >= today else today - timedelta(days=1)

    def issue_due_digests(self, store: Engine, now: datetime) -> int:
        """Under the digest policy, issue one notice per department for the violations
        not noticed yet whose last change was recorded by the latest digest time.
        Idempotent: a second call issues nothing new. Returns the notices issued."""
        if self.settings.policy != "daily_digest":
            return 0
        cutoff = self.digest_cutoff(now)
        with store.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DIGEST_LOCK}
                )
            rows = unnoticed_violations(connection, self.settings.severities, cutoff)
            by_dept: dict[str, list[Row[Any]]] = {}
            for row in rows:
                by_dept.setdefault(row.dept_code or "", []).append(row)
            prior = latest_notices(connection, [row.id for row in rows])
            for dept_rows in by_dept.values():
                self.issue(connection, dept_rows, at=now, prior=prior, digest=True)
        if by_dept:
            log.info(
                "daily digest: issued %d notice(s) for %d violation(s)", len(by_dept), len(rows)
            )
        return len(by_dept)

    # -- one notice -------------------------------------------------------------------

    def issue(
        self,
        connection: Connection,
        violations: Sequence[Row[Any]],
        *,
        at: datetime,
        prior: Mapping[int, PriorNotice] | None = None,
        digest: bool = False,
    ) -> int:
        """Issue one rectification notice for violations of one department."""
        prior = prior or {}
        severity = max((row.severity for row in violations), key=RANK.__getitem__)
        # The notice as a whole follows an earlier one only when all its violations do
        # (an upgrade); in a digest each item names its own earlier notice.
        earlier = {prior.get(row.id) for row in violations}
        follows = next(iter(earlier)) if len(earlier) == 1 else None
        dept_code, dept_name = _department(violations)
        issued_on = local_date(at, self.settings)
        days = self.settings.deadline_days(severity)
        deadline = self.calendar.nth_workday_after(issued_on, days)
        return self._store(
            connection,
            kind=RECTIFICATION,
            violations=violations,
            severity=severity,
            at=at,
            deadline=deadline,
            deadline_days=days,
            refers_to=follows.id if follows is not None else None,
            refers_to_number=follows.number if follows is not None else None,
            recipients=rectification_recipients(self.settings, dept_code, dept_name),
            items=self.items(violations, prior),
            digest=digest,
            original=None,
        )

    def issue_escalation(
        self,
        connection: Connection,
        original: Row[Any],
        violations: Sequence[Row[Any]],
        *,
        at: datetime,
    ) -> tuple[int, str]:
        """Issue the escalation (督办) notice of `original` to the department's next
        level; returns its id and number. The caller changes the original's state."""
        from watchdog.notices.wording import STATE_LABELS

        view = OriginalView(
            number=original.number,
            issued_on=local_date(original.issued_at, self.settings).isoformat(),
            deadline=original.deadline.isoformat() if original.deadline else "—",
            state_label=STATE_LABELS.get(original.state, original.state),
        )
        notice_id = self._store(
            connection,
            kind=ESCALATION,
            violations=violations,
            severity=original.severity,
            at=at,
            deadline=None,
            deadline_days=None,
            refers_to=original.id,
            refers_to_number=original.number,
            recipients=escalation_recipients(self.settings, original.dept_code),
            items=self.items(violations, {}),
            digest=len(violations) > 1,
            original=view,
            dept_name=original.dept_name,
        )
        number = connection.execute(
            select(schema.notices.c.number).where(schema.notices.c.id == notice_id)
        ).scalar_one()
        return notice_id, number

    def items(
        self, violations: Iterable[Row[Any]], prior: Mapping[int, PriorNotice]
    ) -> tuple[NoticeItem, ...]:
        rules = {rule.id: rule for rule in self.rules().rules}
        items = []
        for row in violations:
            rule = rules.get(row.rule_id)
            title = rule.title if rule is not None else row.rule_id
            basis = rule.basis if rule is not None else "（该规则已不在现行规则文件中）"
            evidence = row.evidence or {}
            earlier = prior.get(row.id)
            items.append(
                NoticeItem(
                    violation_id=row.id,
                    case_id=row.case_id,
                    matter=matter_text(evidence),
                    rule_id=row.rule_id,
                    rule_title=title,
                    basis=basis,
                    finding=row.finding,
                    finding_label=finding_label(row.finding, title),
                    severity=row.severity,
                    severity_label=SEVERITY_LABELS.get(row.severity, row.severity),
                    subject=row.subject,
                    evidence=tuple(
                        describe(row.kind, row.finding, evidence, title, self.settings.timezone)
                    ),
                    earlier_number=earlier.number if earlier is not None else None,
                )
            )
        return tuple(items)

    def _store(
        self,
        connection: Connection,
        *,
        kind: str,
        violations: Sequence[Row[Any]],
        severity: str,
        at: datetime,
        deadline: date | None,
        deadline_days: int | None,
        refers_to: int | None,
        refers_to_number: str | None,
        recipients: Recipients,
        items: tuple[NoticeItem, ...],
        digest: bool,
        original: OriginalView | None,
        dept_name: str | None = None,
    ) -> int:
        """Number, render and insert one notice with its links, outbox rows and event."""
        issued_on = local_date(at, self.settings)
        year = issued_on.year
        prefix = self.settings.number_prefix
        lock_chain(connection)  # before the counter's lock: one lock order everywhere
        number = format_number(prefix, year, draw_number(connection, prefix, year))
        dept_code, first_name = _department(violations)
        dept_name = dept_name or first_name
        context = NoticeContext(
            notice=NoticeView(
                number=number,
                kind=kind,
                title="督办通知书" if kind == ESCALATION else "整改通知书",
                severity=severity,
                severity_label=SEVERITY_LABELS.get(severity, severity),
                dept_code=dept_code,
                dept_name=dept_name,
                issued_on=issued_on.isoformat(),
                deadline=deadline.isoformat() if deadline else None,
                deadline_days=deadline_days,
                digest=digest,
                refers_to_number=refers_to_number,
                deadline_provisional=deadline is not None
                and not self.calendar.is_covered(deadline),
            ),
            items=items,
            original=original,
            recipients_note=recipients.note,
            reply_instructions=self.settings.reply_instructions,
        )
        rendered = self.renderer.render(context)
        notices = schema.notices
        notice_id: int = connection.execute(
            insert(notices)
            .values(
                number=number,
                year=year,
                kind=kind,
                refers_to_id=refers_to,
                dept_code=dept_code,
                dept_name=dept_name,
                severity=severity,
                state=ISSUED,
                subject=rendered.subject,
                body_text=rendered.text,
                body_html=rendered.html,
                issued_at=at,
                deadline=deadline,
                updated_at=at,
            )
            .returning(notices.c.id)
        ).scalar_one()
        connection.execute(
            insert(schema.notice_violations),
            [{"notice_id": notice_id, "violation_id": row.id} for row in violations],
        )
        outbox = [(address, "to") for address in recipients.to]
        outbox += [(address, "cc") for address in recipients.cc]
        if outbox:
            connection.execute(
                insert(schema.deliveries),
                [
                    {
                        "notice_id": notice_id,
                        "recipient": address,
                        "role": role,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": at,
                        "permanent": False,
                        "created_at": at,
                    }
                    for address, role in outbox
                ],
            )
        else:
            # Settings require a supervision office, so this is a misconfiguration that
            # slipped through; the notice is still recorded, never dropped.
            log.error("notice %s has no recipient: it is stored but cannot be sent", number)
        detail = f"to: {', '.join(recipients.to) or 'nobody'}"
        if recipients.cc:
            detail += f"; cc: {', '.join(recipients.cc)}"
        if recipients.note:
            detail += f"; department {dept_code} has no contacts, sent to the supervision office"
        record_notice_event(
            connection,
            notice_id=notice_id,
            number=number,
            event=ISSUED,
            state_from=None,
            state_to=ISSUED,
            at=at,
            actor=ACTOR,
            detail=detail,
        )
        log.debug("notice %s issued to %s (%d violation(s))", number, dept_code, len(violations))
        return notice_id


def _department(violations: Sequence[Row[Any]]) -> tuple[str, str]:
    first = violations[0]
    code = first.dept_code or ""
    for row in violations:
        name = (row.evidence or {}).get("dept_name")
        if name:
            return code, str(name)
    return code, code or "（未知部门）"


def load_violations(connection: Connection, ids: Sequence[int]) -> list[Row[Any]]:
    table = schema.violations
    rows: list[Row[Any]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows += connection.execute(select(table).where(table.c.id.in_(chunk))).all()
    rows.sort(key=lambda row: row.id)
    return rows


def latest_notices(connection: Connection, violation_ids: Sequence[int]) -> dict[int, PriorNotice]:
    """violation id → its latest rectification notice (escalations do not count)."""
    n, nv = schema.notices, schema.notice_violations
    latest: dict[int, PriorNotice] = {}
    for start in range(0, len(violation_ids), _CHUNK):
        chunk = violation_ids[start : start + _CHUNK]
        query = (
            select(nv.c.violation_id, n.c.id, n.c.number, n.c.severity)
            .join(n, n.c.id == nv.c.notice_id)
            .where(nv.c.violation_id.in_(chunk), n.c.kind == RECTIFICATION)
            .order_by(n.c.id)
        )
        for row in connection.execute(query):
            latest[row.violation_id] = PriorNotice(row.id, row.number, row.severity)
    return latest


def unnoticed_violations(
    connection: Connection, severities: Iterable[str], cutoff: datetime
) -> list[Row[Any]]:
    """Open violations of the given severities without a rectification notice of their
    severity or graver, whose latest opening/upgrade/reopening is at or before cutoff."""
    v, e = schema.violations, schema.violation_events
    n, nv = schema.notices, schema.notice_violations
    last_change = (
        select(e.c.violation_id, func.max(e.c.at).label("at"))
        .where(e.c.event.in_(_NOTICED_EVENTS))
        .group_by(e.c.violation_id)
        .subquery()
    )
    as_grave = or_(
        n.c.severity == v.c.severity,
        n.c.severity == "red",
        and_(v.c.severity == "warning", n.c.severity == "yellow"),
    )
    noticed = exists(
        select(nv.c.notice_id)
        .join(n, n.c.id == nv.c.notice_id)
        .where(nv.c.violation_id == v.c.id, n.c.kind == RECTIFICATION, as_grave)
    )
    query = (
        select(v)
        .join(last_change, last_change.c.violation_id == v.c.id)
        .where(
            v.c.state == "open",
            v.c.severity.in_(sorted(severities)),
            last_change.c.at <= cutoff,
            ~noticed,
        )
        .order_by(v.c.dept_code, v.c.id)
    )
    return list(connection.execute(query).all())
