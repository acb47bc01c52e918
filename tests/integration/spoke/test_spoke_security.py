"""The clinic's side of issue 11: sessions that end, redirects that stay home, sign-in limits, and
what the hub hears about which doctor acted."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hub.persistence.models import AuditEntry, User
from shared.clock import FrozenClock
from spoke.app import create_app
from spoke.persistence.models import LocalUser
from teleconsult.db import Database
from teleconsult.migrations import upgrade
from tests.support.hub import RunningHub
from tests.support.spoke import (
    PASSWORD,
    api_token,
    csrf_of,
    hub_token,
    make_app,
    services,
    sign_in_page,
    spoke_settings,
)
from tests.support.waiting import wait_for


def _hub_user(hub: RunningHub, username: str) -> tuple[int, bool]:
    db = Database(hub.database_url)
    try:
        with db.session() as s:
            user = s.scalars(select(User).where(User.username == username)).one()
            return user.id, user.active
    finally:
        db.dispose()


def _set_active(hub: RunningHub, username: str, active: bool) -> None:
    uid, _ = _hub_user(hub, username)
    answer = requests.patch(
        f"{hub.url}/api/v1/users/{uid}",
        json={"active": active},
        headers={"Authorization": f"Bearer {hub_token(hub, 'admin')}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


# -- finding 9: sessions end -----------------------------------------------------------------


def test_an_old_cookie_is_worthless_after_sign_out(client: FlaskClient) -> None:
    sign_in_page(client, "clinic1")
    assert client.get("/").status_code == 200
    stolen = client.get_cookie("session")
    assert stolen is not None
    page = client.get("/").get_data(as_text=True)
    client.post("/signout", data={"csrf_token": csrf_of(page)})
    client.set_cookie("session", stolen.value)  # the cookie as it was before signing out
    answer = client.get("/")
    assert answer.status_code == 302 and "/signin" in answer.headers["Location"]


def test_a_bearer_token_ends_at_logout(client: FlaskClient) -> None:
    token = api_token(client, "clinic1")
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/auth/logout", headers=auth).status_code == 204
    assert client.get("/api/v1/cases", headers=auth).status_code == 401


def test_a_session_lasts_hours_not_a_month(tmp_path: Path, hub: RunningHub) -> None:
    settings = spoke_settings(tmp_path, hub.url, hub.spoke_tokens["PHC-1"])
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    upgrade("spoke", settings.database_url)
    clock = FrozenClock()
    app = create_app(settings, clock=clock)
    app.config["TESTING"] = True
    client = app.test_client()
    try:
        sign_in_page(client, "clinic1")
        assert client.get("/").status_code == 200
        clock.advance(hours=12, seconds=1)
        assert client.get("/").status_code == 302
    finally:
        services(app).db.dispose()


def test_a_doctor_deactivated_at_the_hub_is_signed_out_here(
    tmp_path: Path, hub: RunningHub
) -> None:
    app = make_app(
        spoke_settings(tmp_path, hub.url, hub.spoke_tokens["PHC-1"], doctor_recheck_s=0.0)
    )
    client = app.test_client()
    try:
        sign_in_page(client, "clinic3")
        token = api_token(client, "clinic3")
        assert client.get("/").status_code == 200
        _set_active(hub, "clinic3", False)
        assert client.get("/").status_code == 302
        assert (
            client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )
        # the password cached for offline use is forgotten too
        with services(app).db.session() as db:
            row = db.scalars(select(LocalUser).where(LocalUser.username == "clinic3")).one()
            assert row.password_hash is None
    finally:
        _set_active(hub, "clinic3", True)
        services(app).db.dispose()


# -- finding 7: redirects stay on the spoke ----------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "next=//evil.example",
        "next=/%09/evil.example",
        "next=/%5Cevil.example",
        "next=https://evil.example",
    ],
)
def test_sign_in_never_redirects_to_another_host(client: FlaskClient, query: str) -> None:
    page = client.get("/signin").get_data(as_text=True)
    answer = client.post(
        f"/signin?{query}",
        data={"username": "clinic1", "password": PASSWORD, "csrf_token": csrf_of(page)},
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/"


# -- finding 3 at the spoke ----------------------------------------------------------------------


def test_wrong_passwords_at_the_spoke_are_stopped_with_429(client: FlaskClient) -> None:
    statuses = [
        client.post(
            "/api/v1/auth/token", json={"username": "nobody", "password": "wrong"}
        ).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429


# -- finding 8 from the clinic: the hub audits the doctor, not only the spoke --------------------


def test_a_message_sent_from_the_clinic_page_is_the_doctors_at_the_hub(
    running: Flask, hub: RunningHub
) -> None:
    client = running.test_client()
    token = api_token(client, "clinic2")
    raised = client.post(
        "/api/v1/cases",
        json={
            "patient": {"pseudonym": "SEC-1", "age": 30, "sex": "male"},
            "complaint": "Cough",
            "question": "TB?",
            "specialty": "med",
            "priority": "routine",
        },
        headers={"Authorization": f"Bearer {token}"},
    ).get_json()

    def synced() -> bool:
        return bool(services(running).store.get_case(raised["uid"]).get("hub_id"))

    wait_for(synced, timeout=20)
    sign_in_page(client, "clinic2")
    page = client.get(f"/cases/{raised['uid']}").get_data(as_text=True)
    client.post(
        f"/cases/{raised['uid']}/messages", data={"text": "Fever too", "csrf_token": csrf_of(page)}
    )
    uid, _ = _hub_user(hub, "clinic2")
    db = Database(hub.database_url)
    try:
        with db.session() as s:
            rows = s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "create", AuditEntry.object_type == "message"
                )
            ).all()
            assert [(r.user_id, r.spoke_id is not None) for r in rows] == [(uid, True)]
    finally:
        db.dispose()
