"""Job listings: the listings coordinators import, workers' job alerts, and which listing
each worker was alerted to (never twice).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'job_listing',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('employer', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('district', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('trade', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('pay_min', sa.Integer(), nullable=False),
        sa.Column('pay_max', sa.Integer(), nullable=False),
        sa.Column('hours', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('housing', sa.Boolean(), nullable=False),
        sa.Column('contact', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('posted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('expires_on', sa.Date(), nullable=False),
        sa.Column('expired_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('source_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source_key'),
    )
    op.create_index(op.f('ix_job_listing_district'), 'job_listing', ['district'], unique=False)
    op.create_index(op.f('ix_job_listing_trade'), 'job_listing', ['trade'], unique=False)
    op.create_index(op.f('ix_job_listing_expires_on'), 'job_listing', ['expires_on'], unique=False)
    op.create_table(
        'job_subscription',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('district', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column('trade', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column('pay_min', sa.Integer(), nullable=True),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        op.f('ix_job_subscription_person_id'), 'job_subscription', ['person_id'], unique=False
    )
    op.create_table(
        'job_alert_sent',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('listing_id', sa.Integer(), nullable=False),
        sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
        sa.ForeignKeyConstraint(['listing_id'], ['job_listing.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('person_id', 'listing_id'),
    )
    op.create_index(
        op.f('ix_job_alert_sent_person_id'), 'job_alert_sent', ['person_id'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_job_alert_sent_person_id'), table_name='job_alert_sent')
    op.drop_table('job_alert_sent')
    op.drop_index(op.f('ix_job_subscription_person_id'), table_name='job_subscription')
    op.drop_table('job_subscription')
    op.drop_index(op.f('ix_job_listing_expires_on'), table_name='job_listing')
    op.drop_index(op.f('ix_job_listing_trade'), table_name='job_listing')
    op.drop_index(op.f('ix_job_listing_district'), table_name='job_listing')
    op.drop_table('job_listing')
