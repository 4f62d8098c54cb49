"""rating.reason: an optional one-line "why" a rater gives for a level, shown at reveal;
calibration_session.revision: counts the changes the cached report depends on;
calibration_session.revealed_at: when the report was revealed (certification dates)

Revision ID: 7c2d4e6f8a10
Revises: 5b1f0c2e9a47
Create Date: 2026-11-22 23:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision: str = '7c2d4e6f8a10'
down_revision: str | None = '5b1f0c2e9a47'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('calibration_session', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('revision', sa.Integer(), nullable=False, server_default='0')
        )
        batch_op.add_column(
            sa.Column('revealed_at', app.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table('rating', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'reason',
                sqlmodel.sql.sqltypes.AutoString(length=200),
                nullable=False,
                server_default='',
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('rating', schema=None) as batch_op:
        batch_op.drop_column('reason')
    with op.batch_alter_table('calibration_session', schema=None) as batch_op:
        batch_op.drop_column('revealed_at')
        batch_op.drop_column('revision')
