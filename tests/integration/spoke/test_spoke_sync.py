"""The outbox and the Socket.IO client against a real hub process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import func, select

from hub.persistence.models import AdviceDelivery
from hub.persistence.models import Case as HubCase
from shared.schemas import CaseCreateSchema
from spoke.persistence.models import SyncState
from teleconsult.db import Database
from tests.support.hub import RunningHub, prepare_hub_db
from tests.support.processes import free_port, running, start, wait_http
from tests.support.spoke import (
    api_token,
    case_body,
    csrf_of,
    hub_token,
    make_app,
    services,
    sign_in_page,
    spoke_settings,
)
from tests.support.waiting import wait_for


def hub_cases_with_uid(database_url: str, uid: str) -> int:
    db = Database(database_url)
    try:
        with db.session() as session:
            return int(
                session.scalar(select(func.count(HubCase.id)).where(HubCase.uid == uid)) or 0
            )
    finally:
        db.dispose()


def test_case_raised_while_hub_is_down_reaches_it_once_when_it_comes_up(tmp_path: Path) -> None:
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    hub_db = f"sqlite:///{hub_dir / 'hub.sqlite'}"
    tokens = prepare_hub_db(hub_db)
    port = free_port()
    app = make_app(spoke_settings(tmp_path, f"http://127.0.0.1:{port}", tokens["PHC-1"]))
    s = services(app)
    try:
        s.start()
        case = s.store.raise_case(CaseCreateSchema().load(case_body()), "clinic1")
        s.outbox.wake()
        wait_for(lambda: s.store.get_case(case["uid"])["attempts"] >= 2, 10, what="failed attempts")
        health = app.test_client().get("/healthz").get_json()
        assert health == {"status": "ok", "hub_reachable": False, "outbox_pending": 1}
        assert s.store.get_case(case["uid"])["sync_state"] == SyncState.PENDING

        env = {
            "TELECONSULT_HUB_PORT": str(port),
            "TELECONSULT_HUB_DATA_DIR": str(hub_dir),
            "TELECONSULT_HUB_DATABASE_URL": hub_db,
            "TELECONSULT_HUB_ASYNC_MODE": "threading",
        }
        with running(start("hub", ["hub"], env, tmp_path)) as process:
            wait_http(process, f"http://127.0.0.1:{port}/healthz")
            s.outbox.wake()
            synced = wait_for(
                lambda: _synced(s.store.get_case(case["uid"])), 30, what="case synced"
            )
            assert synced["token"] and synced["hub_id"]
            assert s.outbox.hub_reachable
            # A lost answer makes the spoke send again: the idempotency key keeps it one case.
            _mark_pending(s.store.db, case["uid"])
            s.outbox.wake()
            wait_for(lambda: _synced(s.store.get_case(case["uid"])), 30, what="case re-synced")
            assert hub_cases_with_uid(hub_db, case["uid"]) == 1
    finally:
        s.stop()
        s.db.dispose()


def _synced(case: dict[str, Any]) -> dict[str, Any] | None:
    return case if case["sync_state"] == SyncState.SYNCED else None


def _mark_pending(db: Database, uid: str) -> None:
    from spoke.persistence.models import LocalCase

    with db.session() as session:
        row = session.scalar(select(LocalCase).where(LocalCase.uid == uid))
        assert row is not None
        row.sync_state = SyncState.PENDING


def test_case_the_hub_refuses_is_rejected_with_its_message(running: Flask) -> None:
    client = running.test_client()
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    answer = client.post("/api/v1/cases", json=case_body(specialty="no-such"), headers=headers)
    assert answer.status_code == 202
    assert answer.get_json()["sync_state"] == SyncState.PENDING
    uid = answer.get_json()["uid"]
    case = wait_for(lambda: _state(client, headers, uid, SyncState.REJECTED), 15, what="rejected")
    assert "Unknown specialty" in case["sync_error"]


def _state(client: Any, headers: dict[str, str], uid: str, state: str) -> dict[str, Any] | None:
    case: dict[str, Any] = client.get(f"/api/v1/cases/{uid}", headers=headers).get_json()
    return case if case["sync_state"] == state else None


def test_invalid_case_is_refused_at_the_spoke(client: Any) -> None:
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    answer = client.post(
        "/api/v1/cases",
        json=case_body(patient={"pseudonym": "", "age": -1, "sex": "x"}),
        headers=headers,
    )
    assert answer.status_code == 400
    assert set(answer.get_json()["error"]["fields"]["patient"]) == {"pseudonym", "age", "sex"}
    assert services(client.application).store.count_pending() == 0


def test_advice_arrives_over_socketio_is_stored_and_acked(running: Flask, hub: RunningHub) -> None:
    client = running.test_client()
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    uid = client.post(
        "/api/v1/cases", json=case_body(specialty="ortho"), headers=headers
    ).get_json()["uid"]
    case = wait_for(lambda: _state(client, headers, uid, SyncState.SYNCED), 15, what="synced")
    wait_for(lambda: services(running).hub_client.connected, 15, what="socket connected")
    advice = {
        "assessment": "Undisplaced distal radius fracture <b>likely</b>",
        "recommendations": "Below-elbow cast 4 weeks.",
        "disposition": "manage_locally",
        "follow_up_date": "2026-12-20",
        "prescriptions": [
            {
                "drug": "Paracetamol",
                "strength": "500 mg",
                "dose": "1 tab",
                "route": "oral",
                "frequency": "TDS",
                "duration": "5 days",
                "instructions": "after food",
            }
        ],
    }
    ortho = {"Authorization": f"Bearer {hub_token(hub, 'ortho1')}"}
    issued = requests.post(
        f"{hub.url}/api/v1/cases/{case['hub_id']}/advice", json=advice, headers=ortho, timeout=10
    )
    assert issued.status_code == 201, issued.text
    advice_id = issued.json()["id"]
    stored = wait_for(
        lambda: _acked_advice(client, headers, uid), 15, what="advice stored and acked"
    )
    assert stored["id"] == advice_id and stored["prescriptions"][0]["drug"] == "Paracetamol"
    assert client.get(f"/api/v1/cases/{uid}", headers=headers).get_json()["status"] == "advised"
    assert services(running).store.last_seq() > 0
    wait_for(
        lambda: _delivered(hub.database_url, advice_id), 10, what="delivery recorded at the hub"
    )


def _acked_advice(client: Any, headers: dict[str, str], uid: str) -> dict[str, Any] | None:
    advice = client.get(f"/api/v1/cases/{uid}", headers=headers).get_json()["advice"]
    return advice[0] if advice and advice[0]["acked_at"] else None


def _delivered(database_url: str, advice_id: int) -> bool:
    db = Database(database_url)
    try:
        with db.session() as session:
            return (
                session.scalar(select(AdviceDelivery).where(AdviceDelivery.advice_id == advice_id))
                is not None
            )
    finally:
        db.dispose()


def test_case_raised_at_the_hub_is_mirrored(running: Flask, hub: RunningHub) -> None:
    clinic2 = {"Authorization": f"Bearer {hub_token(hub, 'clinic2')}"}
    raised = requests.post(
        f"{hub.url}/api/v1/cases",
        json=case_body(complaint="Raised at the hub"),
        headers=clinic2,
        timeout=10,
    )
    assert raised.status_code == 201, raised.text
    uid = raised.json()["uid"]
    store = services(running).store
    local = wait_for(lambda: store.get_case(uid), 15, what="mirrored case")
    assert local["sync_state"] == SyncState.SYNCED and local["token"] == raised.json()["token"]
    assert local["complaint"] == "Raised at the hub"


def test_the_clinic_closes_an_advised_case_from_its_page(running: Flask, hub: RunningHub) -> None:
    client = running.test_client()
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    uid = client.post(
        "/api/v1/cases", json=case_body(specialty="ortho"), headers=headers
    ).get_json()["uid"]
    case = wait_for(lambda: _state(client, headers, uid, SyncState.SYNCED), 15, what="synced")
    wait_for(lambda: services(running).hub_client.connected, 15, what="socket connected")
    sign_in_page(client)
    page = client.get(f"/cases/{uid}").get_data(as_text=True)
    assert "Close the case" not in page and 'id="answer"' not in page
    ortho = {"Authorization": f"Bearer {hub_token(hub, 'ortho1')}"}
    advice = {"assessment": "Sprain.", "recommendations": "Rest.", "disposition": "manage_locally"}
    assert (
        requests.post(
            f"{hub.url}/api/v1/cases/{case['hub_id']}/advice",
            json=advice,
            headers=ortho,
            timeout=10,
        ).status_code
        == 201
    )
    wait_for(
        lambda: (
            client.get(f"/api/v1/cases/{uid}", headers=headers).get_json()["status"] == "advised"
        ),
        15,
    )
    page = client.get(f"/cases/{uid}").get_data(as_text=True)
    assert "Close the case" in page and "Orthopaedics" in page and "Dr. Clinic 1" in page
    answer = client.post(f"/cases/{uid}/close", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 302
    closed = wait_for(
        lambda: (
            client.get(f"/api/v1/cases/{uid}", headers=headers).get_json()["status"] == "closed"
        ),
        15,
        what="the close mirrored back",
    )
    assert closed
