"""The local store without a hub: idempotent event handling, the seq cursor, the outbox order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.clock import FrozenClock
from shared.schemas import CaseCreateSchema
from spoke.outbox import OutboxWorker
from spoke.persistence.models import SyncState
from spoke.store import CaseStore
from teleconsult.db import Database
from teleconsult.migrations import upgrade
from tests.support.spoke import case_body


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def store(tmp_path: Path, clock: FrozenClock) -> CaseStore:
    url = f"sqlite:///{tmp_path / 'spoke.sqlite'}"
    upgrade("spoke", url)
    return CaseStore(Database(url), clock, "PHC-1")


def hub_case(uid: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "uid": uid,
        "token": "ORTHO-0001",
        "accession_number": "PHC1260105ABCDE",
        "status": "assigned",
        "priority": "urgent",
        "specialty": "ortho",
        "spoke": "PHC-1",
        "patient": {"pseudonym": "HUB-1", "age": 30, "sex": "male"},
        "complaint": "c",
        "history": "",
        "vitals": {},
        "question": "q",
        "raised_by": None,
        "assigned_to": {"id": 3, "username": "ortho1", "name": "Dr. Ortho"},
        "queue_position": 2,
        "created_at": "2026-01-05T09:00:00+00:00",
        **changes,
    }


def advice_event(seq: int, uid: str) -> dict[str, Any]:
    advice = {"id": 11, "uid": "a-11", "version": 1, "assessment": "Sprain", "prescriptions": []}
    return {
        "seq": seq,
        "type": "advice.issued",
        "case_id": 7,
        "case_uid": uid,
        "case": hub_case(uid, status="advised"),
        "advice": advice,
    }


def test_raised_case_waits_in_the_outbox_oldest_first(store: CaseStore, clock: FrozenClock) -> None:
    first = store.raise_case(CaseCreateSchema().load(case_body()), "clinic1")
    clock.advance(seconds=1)
    second = store.raise_case(CaseCreateSchema().load(case_body()), "clinic1")
    assert first["sync_state"] == SyncState.PENDING
    assert first["accession_number"].startswith("PHC1260105")
    assert [b["uid"] for b in store.pending()] == [first["uid"], second["uid"]]
    assert store.count_pending() == 2


def test_same_uid_twice_is_one_case(store: CaseStore) -> None:
    data = CaseCreateSchema().load({**case_body(), "uid": "8a1d6c1e-7e43-4c52-9d8e-6b3c2d1f0a11"})
    assert store.raise_case(data, "clinic1") == store.raise_case(data, "clinic1")
    assert store.count_pending() == 1


def test_an_event_is_handled_once_and_moves_the_cursor(store: CaseStore) -> None:
    uid = "0d9e2b8a-35c4-4f0e-a1ee-0b0b3e5b9f21"
    assert store.handle_event(advice_event(5, uid)) is not None
    assert (
        store.handle_event(advice_event(5, uid)) is not None
    )  # replayed: acked again, stored once
    store.handle_event(
        {"seq": 3, "type": "case.updated", "case_id": 7, "case_uid": uid, "case": hub_case(uid)}
    )
    case = store.get_case(uid)
    assert len(case["advice"]) == 1
    assert case["sync_state"] == SyncState.SYNCED and case["token"] == "ORTHO-0001"
    assert store.last_seq() == 5


def test_backoff_grows_and_is_capped(store: CaseStore) -> None:
    worker = OutboxWorker(store, hub_api=None, interval_s=1.0, max_backoff_s=10.0)  # type: ignore[arg-type]
    assert [worker.backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_the_queue_place_and_eta_follow_the_hub(store: CaseStore) -> None:
    uid = "3f1c3c1e-2a55-4f25-9a0a-2d0c5e7e9b11"
    store.handle_event(
        {
            "seq": 1,
            "type": "queue.position",
            "case_id": 7,
            "case_uid": uid,
            "case": hub_case(uid, queue_position=3, eta="2026-01-05T10:40:00+00:00"),
        }
    )
    waiting = store.get_case(uid)
    assert (waiting["queue_position"], waiting["eta"]) == (3, "2026-01-05T10:40:00+00:00")
    store.handle_event(
        {
            "seq": 2,
            "type": "case.updated",
            "case_id": 7,
            "case_uid": uid,
            "case": hub_case(uid, status="in_review", queue_position=None, eta=None),
        }
    )
    started = store.get_case(uid)
    assert (started["status"], started["queue_position"], started["eta"]) == (
        "in_review",
        None,
        None,
    )
