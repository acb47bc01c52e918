"""the case thread, the hub's case version, SLA breach and the clinic's cancellation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:00:00.000000
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import teleconsult.dbtypes

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_WHEN = teleconsult.dbtypes.UTCDateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch copy of "cases": on SQLite a copy drops the old table, and
    # with foreign keys on that deletes every message and advice of the clinic (ON DELETE CASCADE).
    op.add_column("cases", sa.Column("hub_version", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("clinic_actions", sa.JSON(), nullable=True))
    op.add_column(
        "cases", sa.Column("sla_breached", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("cases", sa.Column("cancel_state", sa.String(length=10), nullable=True))
    op.add_column("cases", sa.Column("cancel_reason", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("cancel_error", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("cancel_requested_at", _WHEN, nullable=True))
    items = op.create_table(
        "thread_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("case_uid", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", _WHEN, nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("received_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["case_uid"],
            ["cases.uid"],
            name=op.f("fk_thread_items_case_uid_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thread_items")),
        sa.UniqueConstraint("key", name=op.f("uq_thread_items_key")),
    )
    op.create_index(op.f("ix_thread_items_case_uid"), "thread_items", ["case_uid"], unique=False)
    _copy_messages_and_advice(items)


def _copy_messages_and_advice(items: sa.Table) -> None:
    """Messages and advice stored before the thread existed become its first items."""
    bind = op.get_bind()
    now = datetime.now(UTC)
    messages = sa.table(
        "messages",
        sa.column("hub_id", sa.Integer()),
        sa.column("case_uid", sa.String()),
        sa.column("author_name", sa.String()),
        sa.column("text", sa.Text()),
        sa.column("created_at", _WHEN),
    )
    advice = sa.table(
        "advice",
        sa.column("hub_id", sa.Integer()),
        sa.column("case_uid", sa.String()),
        sa.column("version", sa.Integer()),
        sa.column("payload", sa.JSON()),
        sa.column("issued_at", _WHEN),
    )
    rows = [
        {
            "key": f"message:{m.hub_id}",
            "case_uid": m.case_uid,
            "kind": "message",
            "author": m.author_name or "",
            "text": m.text or "",
            "at": m.created_at,
            "data": {"message_id": m.hub_id},
            "received_at": now,
        }
        for m in bind.execute(sa.select(messages))
    ]
    for a in bind.execute(sa.select(advice)):
        payload = a.payload or {}
        rows.append(
            {
                "key": f"advice:{a.hub_id}",
                "case_uid": a.case_uid,
                "kind": "advice",
                "author": str((payload.get("specialist") or {}).get("name") or ""),
                "text": str(payload.get("assessment") or ""),
                "at": a.issued_at,
                "data": {
                    "advice_id": a.hub_id,
                    "version": a.version,
                    "disposition": payload.get("disposition"),
                },
                "received_at": now,
            }
        )
    if rows:
        op.bulk_insert(items, rows)


def downgrade() -> None:
    with op.batch_alter_table("thread_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_thread_items_case_uid"))
    op.drop_table("thread_items")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("cancel_error")
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("cancel_state")
        batch_op.drop_column("sla_breached")
        batch_op.drop_column("clinic_actions")
        batch_op.drop_column("hub_version")
