"""each clinic doctor's language, remembered at the spoke

Revision ID: 0003_user_language
Revises: 0002
Create Date: 2026-11-29 20:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_user_language"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("language")
