"""a partial index of open contested violations; the data-altered pass's mark

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN_CONTESTED = "state = 'open' AND contested_by_revision IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_violations_open_contested",
            ["source", "scope_key", "contested_by_revision"],
            postgresql_where=sa.text(_OPEN_CONTESTED),
            sqlite_where=sa.text(_OPEN_CONTESTED),
        )

    # NULL in every existing row: the next data-altered pass of each source looks at
    # all its contested violations once and sets it.
    with op.batch_alter_table("source_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("altered_through_event", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_state", schema=None) as batch_op:
        batch_op.drop_column("altered_through_event")

    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.drop_index("ix_violations_open_contested")
