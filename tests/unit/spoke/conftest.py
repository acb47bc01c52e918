"""Fixtures of the spoke tests: a real hub process, a spoke app on a temporary local database,
and helpers to sign in and to read the CSRF token of a page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from config.settings import Settings, load_settings
from spoke.app import create_app
from spoke.context import Spoke
from teleconsult.migrations import upgrade
from tests.support.databases import from_template
from tests.support.hub import RunningHub, hub_process

PASSWORD = "demo"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """One real hub (demo accounts) for the tests of a module."""
    with hub_process(tmp_path_factory.mktemp("hub")) as running:
        yield running


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


@pytest.fixture
def app(tmp_path: Path, hub: RunningHub) -> Iterator[Flask]:
    """A spoke app talking to the real hub; workers not started."""
    app = make_app(spoke_settings(tmp_path, hub.url, hub.spoke_tokens["PHC-1"]))
    yield app
    services(app).stop()
    services(app).db.dispose()


@pytest.fixture
def running(app: Flask) -> Flask:
    """The spoke app with its outbox worker and Socket.IO client running."""
    services(app).start()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


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
