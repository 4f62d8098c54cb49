"""participation maps: observation_item.kind takes 'participation', and the analytics rows and
sums keep a map's students, speakers, top-3 share and Gini coefficient (no observation holds a
map before this revision, so nothing is backfilled)

Revision ID: 5b7d2c9e4f10
Revises: 96c3afc26caf
Create Date: 2026-12-01 01:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '5b7d2c9e4f10'
down_revision: str | None = '96c3afc26caf'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROW_COLUMNS = ('students', 'speakers', 'top_share', 'gini')
_SUM_COLUMNS = ('students', 'speakers', 'top_share', 'gini')


def upgrade() -> None:
    with op.batch_alter_table('observation_item') as batch:
        batch.alter_column(
            'kind',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=12),
            type_=sqlmodel.sql.sqltypes.AutoString(length=20),
            existing_nullable=False,
        )
        for name in _ROW_COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
    with op.batch_alter_table('observation_item_sum') as batch:
        for name in _SUM_COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('spoken', sa.Integer(), nullable=False, server_default='0'))
    # The model has no server default: the write path always gives a value.
    with op.batch_alter_table('observation_item_sum') as batch:
        for name in (*_SUM_COLUMNS, 'spoken'):
            batch.alter_column(name, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('observation_item_sum') as batch:
        for name in ('spoken', *_SUM_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table('observation_item') as batch:
        for name in _ROW_COLUMNS:
            batch.drop_column(name)
        batch.alter_column(
            'kind',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=20),
            type_=sqlmodel.sql.sqltypes.AutoString(length=12),
            existing_nullable=False,
        )
