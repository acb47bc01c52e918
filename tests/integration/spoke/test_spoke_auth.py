"""Signing in at the spoke: verified at the hub, cached for offline use, this spoke's doctors
only."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

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


def test_doctor_of_another_spoke_cannot_sign_in(client: FlaskClient) -> None:
    answer = client.post("/api/v1/auth/token", json={"username": "clinic4", "password": PASSWORD})
    assert answer.status_code == 403
    assert "PHC-1" in answer.get_json()["error"]["message"]


def test_specialist_cannot_sign_in_at_a_spoke(client: FlaskClient) -> None:
    assert (
        client.post(
            "/api/v1/auth/token", json={"username": "ortho1", "password": PASSWORD}
        ).status_code
        == 403
    )


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
