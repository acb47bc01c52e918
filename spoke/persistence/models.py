"""SQLAlchemy 2 models of a spoke's local database (the outbox). The schema itself is owned by
the Alembic migrations in ``spoke/persistence/migrations``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, MetaData, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from teleconsult.dbtypes import NAMING, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class SyncState:
    """Where a locally raised case stands on its way to the hub."""

    PENDING = "pending"
    SYNCED = "synced"
    REJECTED = "rejected"
    # Cancelled by the clinic before the hub confirmed it: not sent (if the hub got it after
    # all, its answer or events bring the case back and the cancellation is sent).
    WITHDRAWN = "withdrawn"


class LocalUser(Base):
    """A clinic doctor the hub has confirmed; the argon2 hash allows signing in offline."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    spoke_code: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # The pages' language this doctor chose (here or, first, at the hub); None: not chosen yet.
    language: Mapped[str | None] = mapped_column(String(8))
    verified_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class LocalToken(Base):
    """A bearer token this spoke issued; only its sha256 is kept."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LocalCase(Base):
    """A case of this spoke: raised here (and maybe not yet sent) or mirrored from the hub."""

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    accession_number: Mapped[str] = mapped_column(String(16), unique=True)
    hub_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    token: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(20))
    specialty: Mapped[str] = mapped_column(String(32))
    patient_pseudonym: Mapped[str] = mapped_column(String(64))
    patient_age: Mapped[int]
    patient_sex: Mapped[str] = mapped_column(String(10))
    complaint: Mapped[str] = mapped_column(Text)
    history: Mapped[str] = mapped_column(Text, default="")
    vitals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    question: Mapped[str] = mapped_column(Text)
    raised_by: Mapped[str | None] = mapped_column(String(64))
    assigned_to_name: Mapped[str | None] = mapped_column(String(200))
    queue_position: Mapped[int | None]
    # When the hub expects a specialist to start on it (while it waits in a queue).
    eta_at: Mapped[datetime | None]
    # While nobody of the specialty is on duty: no ETA, but not seen before this (next opening).
    eta_not_before: Mapped[datetime | None]
    # The hub's version of the case last applied here: an older snapshot never overwrites it.
    hub_version: Mapped[int | None] = mapped_column(Integer)
    # What the hub's lifecycle lets the clinic do now (provide_info, close, cancel).
    clinic_actions: Mapped[list[Any] | None] = mapped_column(JSON)
    # Past its time to first response at the hub: the page says what to do instead of an ETA.
    sla_breached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The clinic's cancellation: stored here first, sent to the hub by the outbox.
    cancel_state: Mapped[str | None] = mapped_column(String(10))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancel_error: Mapped[str | None] = mapped_column(Text)
    cancel_requested_at: Mapped[datetime | None]
    sync_state: Mapped[str] = mapped_column(String(10), index=True)
    sync_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class LocalAdvice(Base):
    """A specialist's advice as the hub sent it; the payload is the signed record, kept whole."""

    __tablename__ = "advice"
    id: Mapped[int] = mapped_column(primary_key=True)
    hub_id: Mapped[int] = mapped_column(Integer, unique=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    case_uid: Mapped[str] = mapped_column(ForeignKey("cases.uid", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    payload: Mapped[dict[str, Any]]
    issued_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    acked_at: Mapped[datetime | None]


class LocalMessage(Base):
    """A message about a case, as spokes before the thread stored it (migration 0003 copied
    these rows into ``thread_items``; nothing writes here any more)."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    hub_id: Mapped[int] = mapped_column(Integer, unique=True)
    case_uid: Mapped[str] = mapped_column(ForeignKey("cases.uid", ondelete="CASCADE"), index=True)
    author_name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime | None]
    received_at: Mapped[datetime]


class ThreadItem(Base):
    """One entry of a case's thread as the clinic reads it (see ``spoke.thread``): a message,
    the specialist's question and the clinic's answer, a referral, advice, an SLA warning, a
    reassignment. ``key`` names its source at the hub, so storing it twice keeps one."""

    __tablename__ = "thread_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    case_uid: Mapped[str] = mapped_column(ForeignKey("cases.uid", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    author: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime]


class CancelState:
    """Where the clinic's cancellation of a case stands on its way to the hub."""

    PENDING = "pending"
    DONE = "done"
    REFUSED = "refused"


class ReceivedEvent(Base):
    """A hub event this spoke has handled: makes handling idempotent by ``seq``."""

    __tablename__ = "received_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(32))
    case_uid: Mapped[str | None] = mapped_column(String(36))
    received_at: Mapped[datetime]


class Specialty(Base):
    """The hub's specialties, cached for the "raise a case" form while offline."""

    __tablename__ = "specialties"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime]


class State(Base):
    """Small key/value state, e.g. ``last_seq``: the last hub event handled."""

    __tablename__ = "state"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
