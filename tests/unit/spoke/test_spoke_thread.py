"""The clinic's thread built from hub events (``spoke.thread``), without a hub."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from shared.clock import FrozenClock
from spoke.store import CaseStore
from spoke.thread import items_from_event
from teleconsult.db import Database
from teleconsult.migrations import upgrade

AT = "2026-11-29T10:00:00+00:00"
ORTHO = {"id": 7, "username": "ortho1", "name": "Dr. Ortho"}


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"seq": 42, "type": kind, "case_id": 1, "at": AT, "case": {"uid": "u"}, **fields}


def _message(text: str, author: dict[str, Any] = ORTHO) -> dict[str, Any]:
    return {"id": 5, "author": author, "text": text, "created_at": AT}


def test_each_hub_action_becomes_its_kind_of_thread_item() -> None:
    cases = [
        (_event("message.posted", message=_message("Hello")), "message", "Hello"),
        (
            _event("case.updated", action="request_info", message=_message("Weight?")),
            "info_request",
            "Weight?",
        ),
        (
            _event("case.assigned", action="provide_info", message=_message("61 kg")),
            "info_answer",
            "61 kg",
        ),
        (
            _event(
                "case.updated",
                action="refer",
                referral={"reason": "Theatre", "instructions": "Splint", "author": ORTHO},
            ),
            "referral",
            "Theatre",
        ),
        (_event("sla.breached", clinic_text="Call 123"), "sla_warning", "Call 123"),
        (
            _event(
                "advice.issued",
                advice={
                    "id": 3,
                    "version": 2,
                    "assessment": "Sprain",
                    "specialist": {"name": "Dr. Ortho"},
                    "issued_at": AT,
                },
            ),
            "advice",
            "Sprain",
        ),
    ]
    for event, kind, words in cases:
        (item,) = items_from_event(event)
        assert (item.kind, item.text, item.at is not None) == (kind, words, True), event


def test_keys_name_the_source_so_a_replay_adds_nothing() -> None:
    asked = _event("case.updated", action="request_info", message=_message("Weight?"))
    posted = _event("message.posted", message=_message("Weight?"))
    assert items_from_event(asked)[0].key == items_from_event(posted)[0].key == "message:5"
    breach = items_from_event(_event("sla.breached", clinic_text="x"))[0]
    assert breach.key == "event:42"


def test_reassignment_names_the_new_specialist_or_the_pool() -> None:
    moved = _event("case.assigned", action="reassign", case={"uid": "u", "assigned_to": ORTHO})
    pooled = _event("case.updated", action="reroute", case={"uid": "u", "assigned_to": None})
    assert items_from_event(moved)[0].data == {"to": "Dr. Ortho"}
    assert items_from_event(pooled)[0].data == {"to": None}


def test_moves_without_words_add_nothing() -> None:
    for event in (
        _event("queue.position", queue_position=2),
        _event("case.updated", action="claim"),
        _event("case.assigned", action="route"),
        _event("image.received"),
    ):
        assert items_from_event(event) == []


def test_messages_and_advice_stored_before_the_thread_become_its_items(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spoke.sqlite'}"
    upgrade("spoke", url, "0002")
    engine = create_engine(url)
    at = datetime(2026, 11, 1, 9, 0)
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO cases (uid, accession_number, status, priority, specialty,"
                " patient_pseudonym, patient_age, patient_sex, complaint, history, vitals,"
                " question, sync_state, attempts, created_at, updated_at) VALUES ('u1', 'A1',"
                " 'advised', 'routine', 'ortho', 'P', 40, 'male', 'c', '', '{}', 'q', 'synced',"
                " 1, :at, :at)"
            ),
            {"at": at},
        )
        db.execute(
            text(
                "INSERT INTO messages (hub_id, case_uid, author_name, text, created_at,"
                " received_at) VALUES (5, 'u1', 'Dr. Ortho', 'Which hand?', :at, :at)"
            ),
            {"at": at},
        )
        payload = json.dumps({"assessment": "Sprain", "specialist": {"name": "Dr. Ortho"}})
        db.execute(
            text(
                "INSERT INTO advice (hub_id, uid, case_uid, version, payload, issued_at,"
                " received_at) VALUES (3, 'a3', 'u1', 1, :payload, :later, :later)"
            ),
            {"payload": payload, "later": at + timedelta(hours=1)},
        )
    engine.dispose()
    upgrade("spoke", url)
    spoke_db = Database(url)
    try:
        thread = CaseStore(spoke_db, FrozenClock(), "PHC-1").get_case("u1")["thread"]
    finally:
        spoke_db.dispose()
    assert [(t["kind"], t["author"], t["text"]) for t in thread] == [
        ("message", "Dr. Ortho", "Which hand?"),
        ("advice", "Dr. Ortho", "Sprain"),
    ]
