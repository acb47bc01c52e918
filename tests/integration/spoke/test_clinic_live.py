"""The clinic's spoke against a real hub process over real Socket.IO: what the specialist asks
and an SLA breach reach the spoke's database and case JSON by themselves (no page, no REST)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from tests.support.hub import RunningHub, hub_process
from tests.support.spoke import (
    api_token,
    case_body,
    hub_token,
    make_app,
    services,
    spoke_settings,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
ON_CALL = "Ring the hub's on-call line, 1800-111-222."


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """A hub whose emergencies breach at once and whose jobs tick twice a second."""
    env = {
        "TELECONSULT_HUB_SLA_EMERGENCY_MIN": "0",
        "TELECONSULT_HUB_SOCKET_CHECK_S": "0.5",
        "TELECONSULT_HUB_SLA_BREACH_CLINIC_TEXT": ON_CALL,
    }
    with hub_process(tmp_path_factory.mktemp("hub"), extra_env=env) as running:
        yield running


@pytest.fixture
def spoke(tmp_path: Path, hub: RunningHub) -> Iterator[Flask]:
    app = make_app(spoke_settings(tmp_path, hub.url, hub.spoke_tokens["PHC-1"]))
    services(app).start()
    yield app
    services(app).stop()
    services(app).db.dispose()


def _raise(spoke: Flask, **fields: Any) -> tuple[dict[str, Any], Any]:
    client = spoke.test_client()
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    uid = client.post("/api/v1/cases", json=case_body(specialty="ortho", **fields), headers=headers)
    uid = uid.get_json()["uid"]
    store = services(spoke).store
    case = wait_for(lambda: store.get_case(uid)["hub_id"] and store.get_case(uid), 15, what="sync")
    wait_for(lambda: services(spoke).hub_client.connected, 15, what="socket connected")
    return case, store


def _kinds(case: dict[str, Any]) -> list[str]:
    return [t["kind"] for t in case["thread"]]


def test_a_breach_reaches_the_clinic_over_socketio(spoke: Flask) -> None:
    case, store = _raise(spoke, priority="emergency")
    breached = wait_for(
        lambda: (
            "sla_warning" in _kinds(store.get_case(case["uid"])) and store.get_case(case["uid"])
        ),
        20,
        what="the SLA warning at the spoke",
    )
    assert breached["sla_breached"] and breached["eta"] is None
    assert breached["thread"][-1]["text"] == ON_CALL


def test_the_question_reaches_the_clinic_over_socketio(spoke: Flask, hub: RunningHub) -> None:
    case, store = _raise(spoke, priority="routine")
    ortho = {"Authorization": f"Bearer {hub_token(hub, 'ortho1')}"}
    asked = requests.post(
        f"{hub.url}/api/v1/cases/{case['hub_id']}/request-info",
        json={"text": "Is the skin broken?"},
        headers=ortho,
        timeout=10,
    )
    assert asked.status_code == 200, asked.text
    local = wait_for(
        lambda: (
            "info_request" in _kinds(store.get_case(case["uid"])) and store.get_case(case["uid"])
        ),
        15,
        what="the question at the spoke",
    )
    assert local["status"] == "needs_info" and local["thread"][-1]["text"] == "Is the skin broken?"
