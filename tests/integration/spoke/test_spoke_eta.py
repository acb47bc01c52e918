"""The clinic's page tells the ETA honestly (DESIGN.md, "Honest times"): in the clinic's time
zone, never a time that has passed, and "not before" the next opening when nobody is on duty."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from tests.support.hub import RunningHub
from tests.support.spoke import make_app, services, sign_in_page, spoke_settings
from tests.unit.spoke.test_spoke_store import hub_case

UID = "5b2e1a9c-0d1e-4c57-8a43-6f1b2c3d4e5f"


@pytest.fixture
def kolkata(tmp_path: Path, hub: RunningHub) -> Iterator[Flask]:
    app = make_app(
        spoke_settings(tmp_path, hub.url, hub.spoke_tokens["PHC-1"], timezone="Asia/Kolkata")
    )
    yield app
    services(app).stop()
    services(app).db.dispose()


def _show(app: Flask, seq: int, **case: object) -> str:
    services(app).store.handle_event(
        {
            "seq": seq,
            "type": "queue.position",
            "case_id": 7,
            "case_uid": UID,
            "case": hub_case(UID, version=seq, **case),
        }
    )
    client = app.test_client()
    sign_in_page(client)
    return client.get(f"/cases/{UID}").get_data(as_text=True)


def test_a_passed_eta_is_now_in_the_clinics_zone_never_the_past(kolkata: Flask) -> None:
    page = _show(kolkata, 1, queue_position=2, eta="2026-01-05T10:40:00+00:00")
    status = page.split('id="case-status"', 1)[1].split("</dd>", 1)[0]
    assert "16:10" not in status and "10:40" not in status and "UTC" not in status
    now = datetime.now(UTC).astimezone(ZoneInfo("Asia/Kolkata"))
    assert "IST" in status and f"{now.hour:02d}:" in status


def test_nobody_on_duty_says_not_before_the_next_opening(kolkata: Flask) -> None:
    page = _show(kolkata, 2, queue_position=1, eta=None, eta_not_before="2030-01-07T09:00:00+00:00")
    assert "not before Mon 14:30 IST" in page
