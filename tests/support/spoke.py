"""Helpers of the spoke tests: settings and an app on a temporary local database (a copy of a
migrated template), signing in, the CSRF token of a page, a case body."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from config.settings import Settings, load_settings
from spoke.app import create_app
from spoke.context import Spoke
from teleconsult.migrations import upgrade
from tests.support.databases import from_template
from tests.support.hub import RunningHub

PASSWORD = "demo"


def spoke_settings(tmp: Path, hub_url: str, spoke_token: str, **changes: Any) -> Settings:
    """Settings of a PHC-1 spoke whose data live in ``tmp``; the outbox retries fast."""
    data_dir = tmp / "spoke"
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "database_url": f"sqlite:///{data_dir / 'spoke.sqlite'}",
        "hub_url": hub_url,
        "spoke_token": spoke_token,
        "spoke_code": "PHC-1",
        "secret_key": "test-secret",
        "sync_interval_s": 0.05,
        "hub_timeout_s": 5.0,
        **changes,
    }
    return load_settings("spoke", environ={}, overrides=values)


def make_app(settings: Settings) -> Flask:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    if Path(str(make_url(settings.database_url).database)).exists():  # a spoke restarted
        upgrade("spoke", settings.database_url)
    else:
        from_template(settings.database_url, "spoke", lambda url: upgrade("spoke", url))
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


def services(app: Flask) -> Spoke:
    s: Spoke = app.extensions["spoke"]
    return s


def api_token(client: FlaskClient, username: str = "clinic1") -> str:
    answer = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    return str(answer.get_json()["access_token"])


def hub_token(hub: RunningHub, username: str) -> str:
    answer = requests.post(
        f"{hub.url}/api/v1/auth/token",
        json={"username": username, "password": PASSWORD},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in_page(client: FlaskClient, username: str = "clinic1") -> None:
    page = client.get("/signin").get_data(as_text=True)
    answer = client.post(
        "/signin", data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page)}
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)


def case_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": {"pseudonym": "PT-0001", "age": 42, "sex": "female"},
        "complaint": "Pain in the right wrist after a fall",
        "history": "Fell from a bicycle two days ago.",
        "vitals": {"pulse": 88, "bp_systolic": 128, "bp_diastolic": 82},
        "question": "Fracture? Cast or refer?",
        "specialty": "med",
        "priority": "routine",
    }
    body.update(changes)
    return body
