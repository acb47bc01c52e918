"""advice verification code: the random code of an e-prescription's public verification URL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:40:00.000000
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("advice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verification_code", sa.String(length=64), nullable=True))
    advice = sa.table("advice", sa.column("id", sa.Integer), sa.column("verification_code"))
    connection = op.get_bind()
    for (advice_id,) in connection.execute(sa.select(advice.c.id)).all():
        connection.execute(
            advice.update()
            .where(advice.c.id == advice_id)
            .values(verification_code=secrets.token_urlsafe(24))
        )
    with op.batch_alter_table("advice", schema=None) as batch_op:
        batch_op.alter_column("verification_code", existing_type=sa.String(64), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_advice_verification_code"), ["verification_code"]
        )


def downgrade() -> None:
    with op.batch_alter_table("advice", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_advice_verification_code"), type_="unique")
        batch_op.drop_column("verification_code")
