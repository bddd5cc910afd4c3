"""The watchdog's own tables: one MetaData with a naming convention.

Source rows are kept in canonical form keyed by (source, id). Each row carries the poll
sequence number at which its content last changed, so evaluation can find what is new
since it last ran without scanning everything; re-reading an unchanged row (the poll's
overlap) leaves that number alone.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from watchdog.store.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = String(128)
CODE = String(64)


def _bookkeeping() -> list[Column[object]]:
    """Columns every stored source row has besides its canonical ones."""
    return [
        Column("updated_at", UTCDateTime(), nullable=False),
        Column("change_seq", Integer, nullable=False),
    ]


cases = Table(
    "cases",
    metadata,
    Column("source", CODE, primary_key=True),
    Column("case_id", ID, primary_key=True),
    Column("matter_code", CODE),
    Column("matter_name", Text),
    Column("dept_code", CODE, nullable=False),
    Column("dept_name", Text),
    Column("applicant_id", ID),
    Column("applied_at", UTCDateTime()),
    Column("accepted_at", UTCDateTime()),
    Column("promised_limit", Integer, nullable=False),
    Column("statutory_limit", Integer),
    Column("limit_unit", String(1), nullable=False),
    Column("completed_at", UTCDateTime()),
    Column("result", Text),
    *_bookkeeping(),
    Index(None, "source", "change_seq"),
    Index(None, "source", "completed_at"),
)

steps = Table(
    "steps",
    metadata,
    Column("source", CODE, primary_key=True),
    Column("step_id", ID, primary_key=True),
    Column("case_id", ID, nullable=False),
    Column("step_code", CODE, nullable=False),
    Column("step_name", Text),
    Column("handler_id", ID),
    Column("finished_at", UTCDateTime()),
    Column("result", Text),
    *_bookkeeping(),
    # By case, with every column the case passes read: a full evaluation reads each
    # chunk's steps (and the pattern pass tests their codes) from the index alone. By
    # case alone, each step was a lookup into a table stored in poll order: at 1M cases
    # 12.9 s of reading against 4.7 s, and as much again for the pattern pass.
    Index(
        "ix_steps_case_covering",
        "source",
        "case_id",
        "step_code",
        "finished_at",
        "handler_id",
        "step_id",
    ),
    Index(None, "source", "change_seq"),
)

pauses = Table(
    "pauses",
    metadata,
    Column("source", CODE, primary_key=True),
    Column("pause_id", ID, primary_key=True),
    Column("case_id", ID, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("granted_days", Integer),
    *_bookkeeping(),
    Index(None, "source", "case_id"),
    Index(None, "source", "change_seq"),
)

fees = Table(
    "fees",
    metadata,
    Column("source", CODE, primary_key=True),
    Column("fee_id", ID, primary_key=True),
    Column("case_id", ID, nullable=False),
    Column("fee_code", CODE, nullable=False),
    Column("fee_name", Text),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("charged_at", UTCDateTime(), nullable=False),
    *_bookkeeping(),
    Index(None, "source", "case_id"),
    Index(None, "source", "change_seq"),
)

inspections = Table(
    "inspections",
    metadata,
    Column("source", CODE, primary_key=True),
    Column("inspection_id", ID, primary_key=True),
    Column("target_id", ID, nullable=False),
    Column("target_name", Text),
    Column("dept_code", CODE, nullable=False),
    Column("inspected_at", UTCDateTime(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("joint_group", ID),
    *_bookkeeping(),
    Index(None, "source", "target_id"),
    Index(None, "source", "change_seq"),
    # Inspections that came into effect since the last pass (dated after it), found
    # without reading every inspection of the source each cycle.
    Index(None, "source", "inspected_at"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("source", CODE, primary_key=True),
    Column("review_id", ID, primary_key=True),
    Column("case_id", ID),
    Column("dept_code", CODE),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("rating", String(32)),
    Column("replied_at", UTCDateTime()),
    *_bookkeeping(),
    Index(None, "source", "change_seq"),
)

# Rows that broke the contract. One entry per distinct bad row content, so re-reading
# the overlap does not pile up copies; `times_seen` and `last_seen_at` show it persists.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", CODE, nullable=False),
    Column("entity", String(32), nullable=False),
    Column("row_key", ID),
    Column("reason", Text, nullable=False),
    Column("row", JSON, nullable=False),
    Column("row_hash", String(32), nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("times_seen", Integer, nullable=False),
    UniqueConstraint("source", "entity", "row_hash"),
)

# Per source: the poll sequence, and how far evaluation has caught up with it.
source_state = Table(
    "source_state",
    metadata,
    Column("source", CODE, primary_key=True),
    Column("poll_seq", Integer, nullable=False),
    Column("evaluated_seq", Integer, nullable=False),
    # The instant of the last recording pass: events dated between it and the next
    # pass's instant "happen" without any row changing, so those cases are looked at.
    Column("evaluated_at", UTCDateTime()),
    # The working-day calendar that pass used (`watchdog.calendar_watch`): with another
    # calendar every deadline may move, so the next pass looks at every case.
    Column("calendar", String(64)),
    # The newest violation event the data-altered pass has taken into account
    # (`watchdog.engine.altered`): an incremental pass rebuilds only the scope keys with
    # events after it. NULL: that pass looks at everything next time.
    Column("altered_through_event", Integer),
    Column("last_poll_started_at", UTCDateTime()),
    Column("last_success_at", UTCDateTime()),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime()),
    Column("consecutive_failures", Integer, nullable=False),
)

# Per source and entity: the highest updated_at stored so far.
watermarks = Table(
    "watermarks",
    metadata,
    Column("source", CODE, primary_key=True),
    Column("entity", String(32), primary_key=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("rows_read", Integer, nullable=False),
    Column("advanced_at", UTCDateTime(), nullable=False),
)

# A deciding field (a time, limit, handler, code or amount a deadline or finding rests
# on) of a stored source row that the source changed later: old and new value as text.
# Written by the poller in the transaction that stores the new value; filling in an
# empty progress field (an acceptance, a completion) is not a revision.
source_revisions = Table(
    "source_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", CODE, nullable=False),
    Column("entity", String(32), nullable=False),
    Column("row_key", ID, nullable=False),
    Column("case_id", ID),
    # What evaluation scopes by: the case, or for inspections the enterprise.
    Column("scope_key", ID),
    Column("field", String(64), nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("seen_at", UTCDateTime(), nullable=False),
    Column("poll", Integer, nullable=False),
    Index(None, "source", "scope_key"),
    Index(None, "source", "poll"),
)

violations = Table(
    "violations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("rule_id", CODE, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("finding", String(32), nullable=False),
    Column("source", CODE, nullable=False),
    Column("case_id", ID),
    # What an evaluation pass looks at to find this violation again: the case for
    # case rules, the enterprise (target_id) for repeat inspections.
    Column("scope_key", ID, nullable=False),
    Column("subject", Text),
    Column("dept_code", CODE),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime()),
    Column("due_date", Date),
    Column("provisional", Boolean, nullable=False),
    Column("evidence", JSON, nullable=False),
    # Set when the finding went away or got milder only after the source changed a
    # deciding field (`source_revisions`): the violation then stays open, contested.
    Column("contested_by_revision", ForeignKey("source_revisions.id")),
    Column("contested_at", UTCDateTime()),
    Index(None, "source", "rule_id", "scope_key"),
    Index(None, "source", "case_id"),
    Index(None, "state", "severity"),
    Index(None, "dept_code", "state"),
    Index(None, "contested_by_revision"),
    # The data-altered pass reads the open contested violations of a source, or of some
    # of its scope keys: a few rows among all the source's violations, found through
    # this index whatever the planner's statistics say.
    Index(
        "ix_violations_open_contested",
        "source",
        "scope_key",
        "contested_by_revision",
        postgresql_where=text("state = 'open' AND contested_by_revision IS NOT NULL"),
        sqlite_where=text("state = 'open' AND contested_by_revision IS NOT NULL"),
    ),
)

violation_events = Table(
    "violation_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("violation_id", ForeignKey("violations.id"), nullable=False, index=True),
    # opened | upgraded | resolved | reopened | contested
    Column("event", String(16), nullable=False),
    Column("severity_from", String(16)),
    Column("severity_to", String(16)),
    Column("at", UTCDateTime(), nullable=False),  # the evaluation instant
    Column("recorded_at", UTCDateTime(), nullable=False),  # wall clock when written
    Column("reason", Text),
    Column("evidence", JSON),
)

# When an evaluation pass must look at a case again although none of its rows changed:
# the next instant its clock may cross a grading threshold (warning, due date, red due
# date) or an event dated in the future at the last pass (a completion, a pause, a step,
# a fee) comes into effect. Incremental passes find those cases by the index on
# (source, pass, check_at) instead of scanning every open case.
case_checks = Table(
    "case_checks",
    metadata,
    Column("source", CODE, primary_key=True),
    Column("pass", String(16), primary_key=True),  # overdue | case
    Column("case_id", ID, primary_key=True),
    Column("check_at", UTCDateTime(), nullable=False),
    Index(None, "source", "pass", "check_at"),
)

# Rectification notices (整改通知书). Numbers are drawn from `notice_counters` in the
# transaction that inserts the notice, so a rolled-back notice returns its number and
# the sequence of a year has no gaps; the counter row is locked while drawn.
notice_counters = Table(
    "notice_counters",
    metadata,
    Column("prefix", String(32), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("last_number", Integer, nullable=False),
)

notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("number", String(64), nullable=False, unique=True),  # JC-2026-000123
    Column("year", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # rectification | escalation
    # The earlier notice this one follows: the yellow notice of a red upgrade, or the
    # notice an escalation (督办) is about.
    Column("refers_to_id", ForeignKey("notices.id")),
    Column("dept_code", CODE, nullable=False),
    Column("dept_name", Text),
    Column("severity", String(16), nullable=False),
    # issued | delivered | acknowledged | rectified | closed | escalated
    Column("state", String(16), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body_text", Text, nullable=False),
    Column("body_html", Text, nullable=False),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("deadline", Date),  # rectify by this date (working days from issue)
    Column("reply", Text),  # the department's rectification reply
    Column("escalated_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "state", "deadline"),
    Index(None, "dept_code", "state"),
)

# The violations a notice is about: one, or a department's daily digest of several.
notice_violations = Table(
    "notice_violations",
    metadata,
    Column("notice_id", ForeignKey("notices.id"), primary_key=True),
    Column("violation_id", ForeignKey("violations.id"), primary_key=True, index=True),
)

notice_events = Table(
    "notice_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notice_id", ForeignKey("notices.id"), nullable=False, index=True),
    Column("event", String(16), nullable=False),
    Column("state_from", String(16)),
    Column("state_to", String(16)),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", Text, nullable=False),  # --by, or "watchdog" for the daemon
    Column("detail", Text),
)

# The outbox: one row per notice and recipient, written with the notice. A sender
# claims a row with a conditional update, records the attempt before sending, and
# records the outcome after; a row left "sending" by a killed daemon is reconciled
# on restart, never silently sent again.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notice_id", ForeignKey("notices.id"), nullable=False),
    Column("recipient", Text, nullable=False),
    Column("role", String(8), nullable=False),  # to | cc
    Column("state", String(16), nullable=False),  # pending | sending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime()),
    Column("claimed_by", Text),
    Column("claimed_at", UTCDateTime()),
    Column("last_error", Text),
    Column("permanent", Boolean, nullable=False),  # the last error will not go away
    Column("delivered_at", UTCDateTime()),
    Column("message_id", Text),  # generated at the first claim, kept for every resend
    # Attempts cut off by a dead daemon after the claim: each was sent again with the
    # same Message-ID, so a copy the server may already hold can be recognised.
    Column("interruptions", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("notice_id", "recipient"),
    Index(None, "state", "next_attempt_at"),
)

# The audit trail: every violation and notice change and every rule set the daemon
# loads, hash-chained (watchdog/audit/chain.py has the recipe). `seq` is assigned by the
# appender under a lock, gapless from 1, so a removed entry leaves a gap and a forged
# one breaks the next entry's prev_hash.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),  # when the change took effect
    Column("recorded_at", UTCDateTime(), nullable=False),  # wall clock when appended
    Column("actor", Text, nullable=False),  # "watchdog" for the daemon, else --by
    Column("entity", String(16), nullable=False),  # violation | notice | ruleset
    Column("entity_id", ID, nullable=False),
    Column("action", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "entity", "entity_id"),
)

ENTITY_TABLES = {
    "cases": cases,
    "steps": steps,
    "pauses": pauses,
    "fees": fees,
    "inspections": inspections,
    "reviews": reviews,
}
