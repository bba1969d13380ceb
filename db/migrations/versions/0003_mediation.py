"""Mediation: ticket topics in the staff group, assignee, urgency, referral, feedback, and
the message-id map of relayed messages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:48:24.090805
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('assignee_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('urgent', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('referred_to', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('solved', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('rating', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reminded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key('fk_ticket_assignee_id_staff', 'staff', ['assignee_id'], ['id'])
        batch_op.create_index('ix_ticket_topic_id', ['topic_id'], unique=False)

    with op.batch_alter_table('inbox_update', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outgoing', sa.JSON(), nullable=True))

    with op.batch_alter_table('ticket_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_message_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('staff_message_id', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbox_update', schema=None) as batch_op:
        batch_op.drop_column('outgoing')

    with op.batch_alter_table('ticket_message', schema=None) as batch_op:
        batch_op.drop_column('staff_message_id')
        batch_op.drop_column('worker_message_id')

    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_topic_id')
        batch_op.drop_constraint('fk_ticket_assignee_id_staff', type_='foreignkey')
        batch_op.drop_column('reminded_at')
        batch_op.drop_column('rating')
        batch_op.drop_column('solved')
        batch_op.drop_column('referred_to')
        batch_op.drop_column('urgent')
        batch_op.drop_column('assignee_id')
        batch_op.drop_column('topic_id')

