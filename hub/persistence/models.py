"""SQLAlchemy 2 models of the hub. The schema itself is owned by the Alembic migrations."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    literal_column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from teleconsult.dbtypes import NAMING, UTCDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


user_specialties = Table(
    "user_specialties",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("specialty_id", ForeignKey("specialties.id", ondelete="CASCADE"), primary_key=True),
)


class Specialty(Base):
    __tablename__ = "specialties"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Operating hours at the hub ("mon-fri 09:00-12:00"); empty: the hub's default hours.
    hours: Mapped[str] = mapped_column(String(200), default="", server_default="")


class Spoke(Base):
    """A clinic (primary health centre, provincial hospital) connected to the hub."""

    __tablename__ = "spokes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # sha256 of the service token; the token itself is shown once, at registration.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    ae_titles: Mapped[list[Any]] = mapped_column(default=list)
    deidentify: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    spoke_id: Mapped[int | None] = mapped_column(ForeignKey("spokes.id"))
    qualification: Mapped[str] = mapped_column(String(200), default="")
    registration_number: Mapped[str] = mapped_column(String(64), default="")
    language: Mapped[str] = mapped_column(String(8), default="en")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    on_duty: Mapped[bool] = mapped_column(Boolean, default=True)
    max_active_cases: Mapped[int] = mapped_column(Integer, default=10)
    # On the on-call list: gets emergencies outside the specialty's hours.
    on_call: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Weekly duty hours ("mon-fri 08:00-14:00"); empty: on duty whenever ``on_duty`` is set.
    duty_schedule: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Presence as the real-time layer reports it (see CaseRouter.reroute_absent_specialists).
    last_seen_at: Mapped[datetime | None]
    offline_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    spoke: Mapped[Spoke | None] = relationship()
    specialties: Mapped[list[Specialty]] = relationship(secondary=user_specialties)


class SupervisionLink(Base):
    """One spoke doctor supervised by one specialist for one specialty (the 1:4 ratio)."""

    __tablename__ = "supervision_links"
    __table_args__ = (UniqueConstraint("specialty_id", "doctor_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    specialty_id: Mapped[int] = mapped_column(ForeignKey("specialties.id"))
    specialist_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token given to a user at login; stored as its sha256 so a leak of the DB is no
    key."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class TokenCounter(Base):
    """The last human token number given per specialty and day (ORTHO-0042)."""

    __tablename__ = "token_counters"
    specialty_id: Mapped[int] = mapped_column(ForeignKey("specialties.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("spoke_id", "idempotency_key"),)
    # The version is computed by the UPDATE itself: fetch it back there (RETURNING), not with
    # one SELECT per case when the event of each case that moved in a queue is written.
    __mapper_args__ = {"eager_defaults": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    token: Mapped[str | None] = mapped_column(String(32), index=True)
    accession_number: Mapped[str] = mapped_column(String(16), unique=True)
    spoke_id: Mapped[int] = mapped_column(ForeignKey("spokes.id"), index=True)
    raised_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    specialty_id: Mapped[int] = mapped_column(ForeignKey("specialties.id"), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    patient_pseudonym: Mapped[str] = mapped_column(String(64))
    patient_age: Mapped[int] = mapped_column(Integer)
    patient_sex: Mapped[str] = mapped_column(String(16))
    complaint: Mapped[str] = mapped_column(Text)
    history: Mapped[str] = mapped_column(Text, default="")
    vitals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    question: Mapped[str] = mapped_column(Text)
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    assigned_at: Mapped[datetime | None]
    idempotency_key: Mapped[str] = mapped_column(String(100))
    request_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]
    # Queue and SLA: the last announced place and ETA, and the first-response deadline.
    queue_position: Mapped[int | None] = mapped_column(Integer)
    eta_at: Mapped[datetime | None]
    sla_due_at: Mapped[datetime | None] = mapped_column(index=True)
    sla_breached_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]  # review began (claimed, or advised straight away)
    finished_at: Mapped[datetime | None]  # first advice or referral
    routing_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Grows by one in the database with every UPDATE of the row (also from concurrent hub
    # processes): a spoke applies a snapshot of the case only if it is not older than its own.
    version: Mapped[int] = mapped_column(
        Integer, default=1, server_default="1", onupdate=literal_column("version + 1")
    )

    spoke: Mapped[Spoke] = relationship()
    specialty: Mapped[Specialty] = relationship()
    raised_by: Mapped[User | None] = relationship(foreign_keys=[raised_by_id])
    assigned_to: Mapped[User | None] = relationship(foreign_keys=[assigned_to_id])


class CaseHistory(Base):
    """One step of a case's life: who did what, when, from which state to which, and why."""

    __tablename__ = "case_history"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(100))
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text, default="")

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    assigned_to: Mapped[User | None] = relationship(foreign_keys=[assigned_to_id])


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    spoke_id: Mapped[int | None] = mapped_column(ForeignKey("spokes.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    accession_number: Mapped[str] = mapped_column(String(16), default="", index=True)
    study_date: Mapped[str] = mapped_column(String(8), default="")
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    series: Mapped[list[Series]] = relationship(back_populates="study", order_by="Series.number")


class Series(Base):
    __tablename__ = "series"
    id: Mapped[int] = mapped_column(primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="")
    number: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200), default="")

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(
        back_populates="series", order_by="Instance.number"
    )


class Instance(Base):
    __tablename__ = "instances"
    id: Mapped[int] = mapped_column(primary_key=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    number: Mapped[int | None] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer, default=1)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Relative to the hub's image directory.
    path: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    series: Mapped[Series] = relationship(back_populates="instances")


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User | None] = relationship()


def new_verification_code() -> str:
    """The code of an advice's public verification URL: 192 random bits, unguessable."""
    return secrets.token_urlsafe(24)


class Advice(Base):
    """The specialist's signed record. Never edited: a correction is a new version."""

    __tablename__ = "advice"
    __table_args__ = (UniqueConstraint("case_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("advice.id"))
    specialist_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    specialist_name: Mapped[str] = mapped_column(String(200))
    qualification: Mapped[str] = mapped_column(String(200), default="")
    registration_number: Mapped[str] = mapped_column(String(64), default="")
    assessment: Mapped[str] = mapped_column(Text)
    recommendations: Mapped[str] = mapped_column(Text)
    disposition: Mapped[str] = mapped_column(String(32))
    prescriptions: Mapped[list[Any]] = mapped_column(default=list)
    investigations: Mapped[str] = mapped_column(Text, default="")
    follow_up_date: Mapped[date | None] = mapped_column(Date)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The code in the printed QR code (GET /verify/<code>): shows validity, never clinical content.
    verification_code: Mapped[str] = mapped_column(
        String(64), unique=True, default=new_verification_code
    )

    case: Mapped[Case] = relationship()
    specialist: Mapped[User] = relationship()


class AdviceDelivery(Base):
    """When a spoke acknowledged an advice (the hub re-sends until it does)."""

    __tablename__ = "advice_deliveries"
    advice_id: Mapped[int] = mapped_column(ForeignKey("advice.id"), primary_key=True)
    spoke_id: Mapped[int] = mapped_column(ForeignKey("spokes.id"), primary_key=True)
    delivered_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """The event log: every real-time event, with a hub-wide increasing ``seq``, written in the
    same transaction as the change it reports and emitted after commit."""

    __tablename__ = "events"
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    rooms: Mapped[list[Any]] = mapped_column(default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who read or changed what, when, from where."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # The individual: a hub user, or the clinic doctor a spoke acted for (with ``spoke_id``).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    spoke_id: Mapped[int | None] = mapped_column(ForeignKey("spokes.id"))
    # The case the entry concerns, if any (no foreign key: the trail outlives what it names).
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(64))
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
