"""steps indexed by case with the columns the case passes read

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:25:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COVERING = ["source", "case_id", "step_code", "finished_at", "handler_id", "step_id"]


def upgrade() -> None:
    # The covering index serves every lookup the narrower one did (it starts with it).
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.create_index("ix_steps_case_covering", _COVERING)
        batch_op.drop_index(batch_op.f("ix_steps_source_case_id"))


def downgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_steps_source_case_id"), ["source", "case_id"])
        batch_op.drop_index("ix_steps_case_covering")
