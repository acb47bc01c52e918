"""Operating hours as the admin page and the API show them, with a clock that moves between
reads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from hub.app import create_app
from tests.support.hub import prepare_hub_db


class TickingClock:
    """A clock that moves a millisecond at every read, as the real one does between two reads."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    prepare_hub_db(url)
    clock = TickingClock(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))  # a Monday, 10:00
    app = create_app(
        test_config={"async_mode": "threading", "data_dir": str(tmp_path), "database_url": url},
        clock=clock,
    )
    app.config["TESTING"] = True
    with app.test_client() as c:
        yield c
    app.extensions["teleconsult"].db.dispose()


def _admin(client: FlaskClient) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", json={"username": "admin", "password": "demo"})
    return {"Authorization": "Bearer " + r.json["access_token"]}


def test_a_24h_specialty_is_open_now_whatever_the_clock_did_between_reads(
    client: FlaskClient,
) -> None:
    admin = _admin(client)
    r = client.get("/api/v1/specialties/ortho/hours", headers=admin)
    assert r.status_code == 200 and r.json["hours"] == "24h"
    assert r.json["open_now"] is True
    r = client.put(
        "/api/v1/specialties/ortho/hours", json={"hours": "mon-fri 09:00-12:00"}, headers=admin
    )
    assert r.json["open_now"] is True  # Monday 10:00
    # The admin's page shows the same: a tick for every open specialty.
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert csrf is not None
    client.post("/login", data={"username": "admin", "password": "demo", "csrf_token": csrf[1]})
    page = client.get("/admin/specialties").get_data(as_text=True)
    assert "✗" not in page and page.count("✓") == 5
