"""The outbox: everything the hotline sends, one row each, written with the turn that
decided it; and a person's "blocked the bot" mark.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('pace', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('lane', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.Column('held', sa.Boolean(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('sent_ids', sa.JSON(), nullable=True),
        sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f('ix_outbox_lane'), 'outbox', ['lane'], unique=False)
    op.create_index(op.f('ix_outbox_status'), 'outbox', ['status'], unique=False)
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blocked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('blocked_at')
    op.drop_index(op.f('ix_outbox_status'), table_name='outbox')
    op.drop_index(op.f('ix_outbox_lane'), table_name='outbox')
    op.drop_table('outbox')
