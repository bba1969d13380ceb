"""Broadcasts: notices to subscribed workers, one delivery row per recipient; a worker's
notices switch (/stop, /start); outbox rows sent only once (a broadcast's copies).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, which SQLite does in place: batch mode would copy the outbox into a new
    # table and lose its AUTOINCREMENT, and the sender needs ids that never come back.
    op.add_column('person', sa.Column('notices_off_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column('outbox', sa.Column('once', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'broadcast',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('texts', sa.JSON(), nullable=False),
        sa.Column('photo', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('audience', sa.JSON(), nullable=False),
        sa.Column('step', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column('thread_id', sa.BigInteger(), nullable=True),
        sa.Column('scheduled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('recipients', sa.Integer(), nullable=False),
        sa.Column('progress_message_id', sa.BigInteger(), nullable=True),
        sa.Column('progress_outbox_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_broadcast_status'), 'broadcast', ['status'], unique=False)
    op.create_table(
        'broadcast_delivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('broadcast_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('outbox_id', sa.Integer(), nullable=True),
        sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['broadcast_id'], ['broadcast.id'], ),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('broadcast_id', 'person_id'),
    )
    for column in ('broadcast_id', 'person_id', 'status', 'outbox_id'):
        op.create_index(
            op.f(f'ix_broadcast_delivery_{column}'), 'broadcast_delivery', [column], unique=False
        )


def downgrade() -> None:
    for column in ('broadcast_id', 'person_id', 'status', 'outbox_id'):
        op.drop_index(op.f(f'ix_broadcast_delivery_{column}'), table_name='broadcast_delivery')
    op.drop_table('broadcast_delivery')
    op.drop_index(op.f('ix_broadcast_status'), table_name='broadcast')
    op.drop_table('broadcast')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('once')
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('notices_off_at')
