"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa

import watchdog.store.types
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=True),
        sa.Column("matter_name", sa.Text(), nullable=True),
        sa.Column("dept_code", sa.String(length=64), nullable=False),
        sa.Column("dept_name", sa.Text(), nullable=True),
        sa.Column("applicant_id", sa.String(length=128), nullable=True),
        sa.Column("applied_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("promised_limit", sa.Integer(), nullable=False),
        sa.Column("statutory_limit", sa.Integer(), nullable=True),
        sa.Column("limit_unit", sa.String(length=1), nullable=False),
        sa.Column("completed_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("updated_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "case_id", name=op.f("pk_cases")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cases_source_change_seq"), ["source", "change_seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_cases_source_completed_at"), ["source", "completed_at"], unique=False
        )

    op.create_table(
        "fees",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("fee_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=False),
        sa.Column("fee_code", sa.String(length=64), nullable=False),
        sa.Column("fee_name", sa.Text(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("charged_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "fee_id", name=op.f("pk_fees")),
    )
    with op.batch_alter_table("fees", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fees_source_case_id"), ["source", "case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_fees_source_change_seq"), ["source", "change_seq"], unique=False
        )

    op.create_table(
        "inspections",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("inspection_id", sa.String(length=128), nullable=False),
        sa.Column("target_id", sa.String(length=128), nullable=False),
        sa.Column("target_name", sa.Text(), nullable=True),
        sa.Column("dept_code", sa.String(length=64), nullable=False),
        sa.Column("inspected_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("joint_group", sa.String(length=128), nullable=True),
        sa.Column("updated_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "inspection_id", name=op.f("pk_inspections")),
    )
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inspections_source_change_seq"), ["source", "change_seq"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_inspections_source_target_id"), ["source", "target_id"], unique=False
        )

    op.create_table(
        "pauses",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("pause_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("started_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("granted_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "pause_id", name=op.f("pk_pauses")),
    )
    with op.batch_alter_table("pauses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pauses_source_case_id"), ["source", "case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_pauses_source_change_seq"), ["source", "change_seq"], unique=False
        )

    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("row_key", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("row", sa.JSON(), nullable=False),
        sa.Column("row_hash", sa.String(length=32), nullable=False),
        sa.Column("first_seen_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("times_seen", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint(
            "source", "entity", "row_hash", name=op.f("uq_quarantine_source_entity_row_hash")
        ),
    )
    op.create_table(
        "reviews",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("review_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=True),
        sa.Column("dept_code", sa.String(length=64), nullable=True),
        sa.Column("received_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rating", sa.String(length=32), nullable=True),
        sa.Column("replied_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "review_id", name=op.f("pk_reviews")),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reviews_source_change_seq"), ["source", "change_seq"], unique=False
        )

    op.create_table(
        "source_state",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("poll_seq", sa.Integer(), nullable=False),
        sa.Column("evaluated_seq", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "last_poll_started_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "last_success_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_state")),
    )
    op.create_table(
        "steps",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("step_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=False),
        sa.Column("step_code", sa.String(length=64), nullable=False),
        sa.Column("step_name", sa.Text(), nullable=True),
        sa.Column("handler_id", sa.String(length=128), nullable=True),
        sa.Column("finished_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("updated_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "step_id", name=op.f("pk_steps")),
    )
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_steps_source_case_id"), ["source", "case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_steps_source_change_seq"), ["source", "change_seq"], unique=False
        )

    op.create_table(
        "violations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("finding", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=True),
        sa.Column("scope_key", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("dept_code", sa.String(length=64), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_violations")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_violations_fingerprint")),
    )
    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_violations_dept_code_state"), ["dept_code", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_violations_source_case_id"), ["source", "case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_violations_source_rule_id_scope_key"),
            ["source", "rule_id", "scope_key"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_violations_state_severity"), ["state", "severity"], unique=False
        )

    op.create_table(
        "watermarks",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("updated_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("advanced_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "entity", name=op.f("pk_watermarks")),
    )
    op.create_table(
        "violation_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("violation_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("severity_from", sa.String(length=16), nullable=True),
        sa.Column("severity_to", sa.String(length=16), nullable=True),
        sa.Column("at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["violation_id"],
            ["violations.id"],
            name=op.f("fk_violation_events_violation_id_violations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_violation_events")),
    )
    with op.batch_alter_table("violation_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_violation_events_violation_id"), ["violation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("violation_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_violation_events_violation_id"))

    op.drop_table("violation_events")
    op.drop_table("watermarks")
    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_violations_state_severity"))
        batch_op.drop_index(batch_op.f("ix_violations_source_rule_id_scope_key"))
        batch_op.drop_index(batch_op.f("ix_violations_source_case_id"))
        batch_op.drop_index(batch_op.f("ix_violations_dept_code_state"))

    op.drop_table("violations")
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_steps_source_change_seq"))
        batch_op.drop_index(batch_op.f("ix_steps_source_case_id"))

    op.drop_table("steps")
    op.drop_table("source_state")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviews_source_change_seq"))

    op.drop_table("reviews")
    op.drop_table("quarantine")
    with op.batch_alter_table("pauses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pauses_source_change_seq"))
        batch_op.drop_index(batch_op.f("ix_pauses_source_case_id"))

    op.drop_table("pauses")
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspections_source_target_id"))
        batch_op.drop_index(batch_op.f("ix_inspections_source_change_seq"))

    op.drop_table("inspections")
    with op.batch_alter_table("fees", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fees_source_change_seq"))
        batch_op.drop_index(batch_op.f("ix_fees_source_case_id"))

    op.drop_table("fees")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_source_completed_at"))
        batch_op.drop_index(batch_op.f("ix_cases_source_change_seq"))

    op.drop_table("cases")
