"""Retention: when `hotline purge` erased a ticket's personal details and evidence.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 18:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (in place on SQLite, as in 0007): nothing to copy.
    op.add_column('ticket', sa.Column('purged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('purged_at')
