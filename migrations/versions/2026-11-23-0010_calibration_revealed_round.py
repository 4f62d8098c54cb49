"""calibration_session.revealed_round: the latest round whose report was revealed (what
certification counts), stamped with revealed_at once per round

Revision ID: 8d3e5f7a9b21
Revises: 7c2d4e6f8a10
Create Date: 2026-11-23 00:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '8d3e5f7a9b21'
down_revision: str | None = '7c2d4e6f8a10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('calibration_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revealed_round', sa.Integer(), nullable=True))
    # Sessions revealed before this column: their current round is the one revealed.
    op.execute(
        "UPDATE calibration_session SET revealed_round = current_round "
        "WHERE status = 'revealed'"
    )


def downgrade() -> None:
    with op.batch_alter_table('calibration_session', schema=None) as batch_op:
        batch_op.drop_column('revealed_round')
