"""source revisions and contested violations; the calendar of the last evaluation

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 05:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

import watchdog.store.types
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("row_key", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=True),
        sa.Column("scope_key", sa.String(length=128), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("seen_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("poll", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_revisions")),
    )
    with op.batch_alter_table("source_revisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_source_revisions_source_scope_key"), ["source", "scope_key"]
        )
        batch_op.create_index(batch_op.f("ix_source_revisions_source_poll"), ["source", "poll"])

    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contested_by_revision", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "contested_at", watchdog.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_violations_contested_by_revision_source_revisions"),
            "source_revisions",
            ["contested_by_revision"],
            ["id"],
        )
        batch_op.create_index(
            batch_op.f("ix_violations_contested_by_revision"), ["contested_by_revision"]
        )

    with op.batch_alter_table("source_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calendar", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_state", schema=None) as batch_op:
        batch_op.drop_column("calendar")

    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_violations_contested_by_revision"))
        batch_op.drop_constraint(
            batch_op.f("fk_violations_contested_by_revision_source_revisions"),
            type_="foreignkey",
        )
        batch_op.drop_column("contested_at")
        batch_op.drop_column("contested_by_revision")

    with op.batch_alter_table("source_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_revisions_source_poll"))
        batch_op.drop_index(batch_op.f("ix_source_revisions_source_scope_key"))

    op.drop_table("source_revisions")
