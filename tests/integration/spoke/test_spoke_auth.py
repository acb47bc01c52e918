"""Signing in at the spoke: verified at the hub, cached for offline use, this spoke's doctors
only."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hub.persistence.models import ApiToken
from teleconsult.db import Database
from tests.support.hub import RunningHub
from tests.support.processes import free_port
from tests.support.spoke import PASSWORD, api_token, make_app, services, spoke_settings


def test_factory_and_health(client: FlaskClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok", "hub_reachable": False, "outbox_pending": 0}


def test_clinic_doctor_of_this_spoke_gets_a_token(client: FlaskClient) -> None:
    token = api_token(client, "clinic1")
    assert (
        client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )


def test_wrong_password_is_401(client: FlaskClient) -> None:
    answer = client.post("/api/v1/auth/token", json={"username": "clinic1", "password": "nope"})
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "not_authenticated"


def _hub_tokens(hub: RunningHub) -> int:
    db = Database(hub.database_url)
    try:
        with db.session() as s:
            return len(s.scalars(select(ApiToken)).all())
    finally:
        db.dispose()


def test_a_right_hub_password_of_someone_else_looks_like_a_wrong_one(
    client: FlaskClient, hub: RunningHub
) -> None:
    """Finding 14: another clinic's doctor or a specialist with the right password got 403
    (a wrong one 401), and each try left a live hub token behind."""
    before = _hub_tokens(hub)
    wrong = client.post("/api/v1/auth/token", json={"username": "clinic1", "password": "nope"})
    for username in ("clinic4", "ortho1", "sup1", "admin"):
        answer = client.post(
            "/api/v1/auth/token", json={"username": username, "password": PASSWORD}
        )
        assert (answer.status_code, answer.get_json()) == (wrong.status_code, wrong.get_json())
    assert wrong.status_code == 401
    assert _hub_tokens(hub) == before  # the spoke asked the hub to check, not to sign in


def test_api_needs_a_valid_bearer_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/cases").status_code == 401
    assert (
        client.get("/api/v1/cases", headers={"Authorization": "Bearer forged"}).status_code == 401
    )


def test_offline_sign_in_with_the_password_last_verified(
    app: Flask, tmp_path: Path, hub: RunningHub
) -> None:
    api_token(app.test_client(), "clinic1")  # verified at the hub: hash cached locally
    offline = spoke_settings(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        "unused",
        database_url=services(app).settings.database_url,
    )
    offline_app = make_app(offline)
    try:
        client = offline_app.test_client()
        assert (
            client.post(
                "/api/v1/auth/token", json={"username": "clinic1", "password": PASSWORD}
            ).status_code
            == 200
        )
        assert (
            client.post(
                "/api/v1/auth/token", json={"username": "clinic1", "password": "x"}
            ).status_code
            == 401
        )
        assert (
            client.post(
                "/api/v1/auth/token", json={"username": "clinic2", "password": PASSWORD}
            ).status_code
            == 401
        )
    finally:
        services(offline_app).db.dispose()
