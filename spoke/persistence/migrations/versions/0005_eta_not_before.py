"""eta_not_before: while nobody of the specialty is on duty the hub gives no ETA but the time
the case will not be seen before (the next opening)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 21:15:00.000000
"""

import sqlalchemy as sa
from alembic import op

import teleconsult.dbtypes

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "eta_not_before", teleconsult.dbtypes.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("eta_not_before")
