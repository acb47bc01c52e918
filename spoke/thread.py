"""The thread of a case as the clinic reads it (DESIGN.md, "Clinical safety rules"): one ordered
list of ``{kind, author, text, at, ...}`` built here, and only here, from what the hub sends.

``items_from_event`` turns one hub event into thread items (pure); ``CaseThread`` stores them in
the spoke's database (once per ``key``) and reads a case's thread back in order. The store calls
it with every event, every advice fetched over REST and every message the clinic sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared import protocol
from shared.clock import parse_instant
from spoke.persistence.models import ThreadItem

MESSAGE = "message"
INFO_REQUEST = "info_request"
INFO_ANSWER = "info_answer"
REFERRAL = "referral"
ADVICE = "advice"
SLA_WARNING = "sla_warning"
REASSIGNED = "reassigned"
# Kinds that are words between people (the case JSON's ``messages`` keeps showing these).
SPOKEN = (MESSAGE, INFO_REQUEST, INFO_ANSWER)
# Kinds that call for the clinic's attention (alerts on the clinic's pages).
ALERTING = (INFO_REQUEST, ADVICE, REFERRAL, SLA_WARNING)
# Hub actions after which the case is with someone else (or back in the pool).
_MOVED = {"reassign", "reroute", "release"}
_HUB = "hub"


@dataclass(frozen=True)
class Item:
    key: str
    kind: str
    author: str
    text: str
    at: datetime | None
    data: dict[str, Any] = field(default_factory=dict)


def _name(person: Any, default: str = "") -> str:
    if isinstance(person, dict):
        return str(person.get("name") or person.get("username") or default)
    return default


def _message_item(kind: str, message: dict[str, Any]) -> Item:
    return Item(
        key=f"message:{message['id']}",
        kind=kind,
        author=_name(message.get("author")),
        text=str(message.get("text") or ""),
        at=parse_instant(message.get("created_at")),
        data={"message_id": message["id"]},
    )


def advice_item(advice: dict[str, Any]) -> Item:
    """An advice version as a thread item (the whole advice stays in the advice table)."""
    return Item(
        key=f"advice:{advice['id']}",
        kind=ADVICE,
        author=_name(advice.get("specialist")),
        text=str(advice.get("assessment") or ""),
        at=parse_instant(advice.get("issued_at")),
        data={
            "advice_id": advice["id"],
            "version": int(advice.get("version") or 1),
            "disposition": advice.get("disposition"),
        },
    )


def items_from_event(event: dict[str, Any]) -> list[Item]:
    """What one hub event adds to its case's thread (often nothing: a queue move, an image)."""
    kind, seq, at = event.get("type"), event.get("seq"), parse_instant(event.get("at"))
    message, action = event.get("message"), event.get("action")
    if kind == protocol.MESSAGE_POSTED and isinstance(message, dict):
        return [_message_item(MESSAGE, message)]
    if kind == protocol.ADVICE_ISSUED and isinstance(event.get("advice"), dict):
        return [advice_item(event["advice"])]
    if kind == protocol.SLA_BREACHED:
        text = str(event.get("clinic_text") or "")
        return [Item(f"event:{seq}", SLA_WARNING, _HUB, text, at, {"due_at": event.get("due_at")})]
    if kind not in (protocol.CASE_UPDATED, protocol.CASE_ASSIGNED):
        return []
    if action == "request_info" and isinstance(message, dict):
        return [_message_item(INFO_REQUEST, message)]
    if action == "provide_info" and isinstance(message, dict):
        return [_message_item(INFO_ANSWER, message)]
    referral = event.get("referral")
    if action == "refer" and isinstance(referral, dict):
        return [_referral(seq, at, referral)]
    if action in _MOVED:
        case = event.get("case")
        to = _name(case.get("assigned_to")) if isinstance(case, dict) else ""
        text = f"Now with {to}." if to else "Waiting for the next available specialist."
        return [Item(f"event:{seq}", REASSIGNED, _HUB, text, at, {"to": to or None})]
    return []


def _referral(seq: Any, at: datetime | None, referral: dict[str, Any]) -> Item:
    return Item(
        key=f"event:{seq}",
        kind=REFERRAL,
        author=_name(referral.get("author")),
        text=str(referral.get("reason") or ""),
        at=at,
        data={"instructions": str(referral.get("instructions") or "")},
    )


def as_json(row: ThreadItem) -> dict[str, Any]:
    return {
        **row.data,
        "id": row.id,
        "kind": row.kind,
        "author": row.author,
        "text": row.text,
        "at": (row.at or row.received_at).isoformat(),
    }


class CaseThread:
    """Stores thread items in the caller's session and reads them back, oldest first."""

    def add(
        self, session: Session, case_uid: str, items: Iterable[Item], received_at: datetime
    ) -> list[ThreadItem]:
        """Store the items not stored yet (by ``key``); returns the new rows."""
        added = []
        for item in items:
            if session.scalar(select(ThreadItem.id).where(ThreadItem.key == item.key)):
                continue
            row = ThreadItem(
                key=item.key,
                case_uid=case_uid,
                kind=item.kind,
                author=item.author[:200],
                text=item.text,
                at=item.at,
                data=item.data,
                received_at=received_at,
            )
            session.add(row)
            added.append(row)
        if added:
            session.flush()
        return added

    def read(self, session: Session, case_uid: str) -> list[dict[str, Any]]:
        rows = session.scalars(
            select(ThreadItem)
            .where(ThreadItem.case_uid == case_uid)
            .order_by(func.coalesce(ThreadItem.at, ThreadItem.received_at), ThreadItem.id)
        )
        return [as_json(r) for r in rows]

    def latest_alert(self, session: Session) -> dict[str, Any] | None:
        """The newest item of any case that calls for the clinic's attention (for alerts)."""
        row = session.scalar(
            select(ThreadItem)
            .where(ThreadItem.kind.in_(ALERTING))
            .order_by(ThreadItem.id.desc())
            .limit(1)
        )
        return {**as_json(row), "case_uid": row.case_uid} if row is not None else None
