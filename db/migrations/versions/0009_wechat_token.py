"""WeChat: the account's access token, shared by every process.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'wechat_access_token',
        sa.Column('app_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('refreshed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('app_id'),
    )


def downgrade() -> None:
    op.drop_table('wechat_access_token')
