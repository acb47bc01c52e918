"""Real-time delivery under faults, with real hub processes under eventlet and real clients:
a dropped link, a hub killed and restarted, two hub processes sharing events through Redis."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from sqlalchemy import select

from hub.persistence.models import Event
from teleconsult.db import Database
from tests.conftest import need
from tests.support.databases import REDIS_URL, fresh_postgres, postgres_available, redis_available
from tests.support.hub import RunningHub, hub_process, start_hub
from tests.support.processes import running
from tests.support.realtime import Listener
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

CASE = {
    "patient": {"pseudonym": "RT-1", "age": 50, "sex": "female"},
    "complaint": "Cough for three weeks",
    "question": "TB work-up?",
    "specialty": "med",
    "priority": "routine",
    "raised_by": "clinic1",
}
ADVICE = {
    "assessment": "Probable TB.",
    "recommendations": "Sputum CBNAAT.",
    "disposition": "manage_locally",
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _login(base: str, username: str) -> dict[str, str]:
    r = requests.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": "demo"}, timeout=10
    )
    r.raise_for_status()
    return _bearer(r.json()["access_token"])


def _raise_case(base: str, spoke_token: str) -> dict[str, Any]:
    r = requests.post(f"{base}/api/v1/cases", json=CASE, headers=_bearer(spoke_token), timeout=10)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _post_messages(base: str, headers: dict[str, str], case_id: int, n: int) -> None:
    for i in range(n):
        r = requests.post(
            f"{base}/api/v1/cases/{case_id}/messages",
            json={"text": f"note {i}"},
            headers=headers,
            timeout=10,
        )
        assert r.status_code == 201, r.text


def _spoke_seqs_in_log(database_url: str, spoke_room: str) -> list[int]:
    db = Database(database_url)
    try:
        with db.session() as s:
            return [
                e.seq for e in s.scalars(select(Event).order_by(Event.seq)) if spoke_room in e.rooms
            ]
    finally:
        db.dispose()


@pytest.fixture
def hub(tmp_path: Path):  # type: ignore[no-untyped-def]
    with hub_process(tmp_path, async_mode="eventlet") as running_hub:
        yield running_hub


def test_a_spoke_disconnected_while_20_events_happen_gets_all_20_in_order(hub: RunningHub) -> None:
    token = hub.spoke_tokens["PHC-1"]
    spoke = Listener(hub.url, token)
    case = _raise_case(hub.url, token)
    wait_for(lambda: spoke.events, 5, what="the first event")
    last_seen = spoke.seqs()[-1]
    spoke.close()

    _post_messages(hub.url, _login(hub.url, "med1"), case["id"], 20)

    again = Listener(hub.url, token)
    try:
        answer = again.resume(last_seen)
        assert answer["ok"] and answer["replayed"] == 20
        missed = wait_for(
            lambda: len(again.events) >= 20 and again.events, 10, what="20 missed events"
        )
        assert [e["type"] for e in missed] == ["message.posted"] * 20
        assert [e["message"]["text"] for e in missed] == [f"note {i}" for i in range(20)]
        seqs = [e["seq"] for e in missed]
        assert seqs == sorted(seqs) and seqs == _spoke_seqs_in_log(hub.database_url, "spoke:1")[1:]
    finally:
        again.close()


def test_the_hub_killed_and_restarted_loses_nothing_a_client_was_told(
    tmp_path: Path, hub: RunningHub
) -> None:
    token = hub.spoke_tokens["PHC-1"]
    spoke = Listener(hub.url, token, reconnection=True)
    try:
        case = _raise_case(hub.url, token)
        _post_messages(hub.url, _login(hub.url, "med1"), case["id"], 5)
        told = wait_for(lambda: len(spoke.events) >= 6 and list(spoke.events), 10, what="6 events")
        hub.process.stop(sig=9)
        wait_for(lambda: not spoke.client.connected, 10, what="the client to notice")

        process, _ = start_hub(
            tmp_path, hub.database_url, name="hub-restarted", port=hub.port, async_mode="eventlet"
        )
        with running(process):
            wait_for(lambda: spoke.client.connected, 20, what="the client to reconnect")
            before = len(spoke.events)
            answer = spoke.resume(0)
            replayed = wait_for(
                lambda: len(spoke.events) >= before + 6 and spoke.events[before:], 10, what="replay"
            )
            assert answer["replayed"] == 6
            assert replayed == told  # every event, byte for byte, with the same seq
            _post_messages(hub.url, _login(hub.url, "med1"), case["id"], 1)
            live = wait_for(
                lambda: len(spoke.events) > before + 6 and spoke.events[-1], 10, what="a live event"
            )
            assert live["seq"] > told[-1]["seq"] and live["message"]["text"] == "note 0"
    finally:
        spoke.close()


def test_an_unauthorised_client_can_neither_connect_nor_join(hub: RunningHub) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        Listener(hub.url, "not-a-token")
    other = Listener(hub.url, hub.spoke_tokens["PHC-2"])
    try:
        other.client.emit("join", {"room": "spoke:1"})
        other.client.emit("resume", {"after_seq": 0})
        mine = Listener(hub.url, hub.spoke_tokens["PHC-1"])
        case = _raise_case(hub.url, hub.spoke_tokens["PHC-1"])
        wait_for(lambda: mine.events, 5, what="the event at its own spoke")
        mine.close()
        assert other.resume(0)["replayed"] == 0
        assert all(e.get("case_id") != case["id"] for e in other.events)
    finally:
        other.close()


def test_advice_given_on_one_hub_process_reaches_a_spoke_on_another(tmp_path: Path) -> None:
    need(postgres_available(), "PostgreSQL is not reachable on 127.0.0.1:5432")
    need(redis_available(), "Redis is not reachable on 127.0.0.1:6379")
    channel = f"teleconsult-test-{uuid.uuid4().hex[:8]}"
    extra = {"TELECONSULT_HUB_MESSAGE_QUEUE": REDIS_URL}
    with (
        fresh_postgres() as url,
        hub_process(
            tmp_path, url, "eventlet", {**extra, "TELECONSULT_HUB_SOCKETIO_CHANNEL": channel}
        ) as a,
    ):
        b_process, b_port = start_hub(
            tmp_path,
            url,
            name="hub-b",
            async_mode="eventlet",
            extra_env={**extra, "TELECONSULT_HUB_SOCKETIO_CHANNEL": channel},
        )
        with running(b_process):
            b_url = f"http://127.0.0.1:{b_port}"
            spoke = Listener(b_url, a.spoke_tokens["PHC-1"])
            try:
                case = _raise_case(a.url, a.spoke_tokens["PHC-1"])
                r = requests.post(
                    f"{a.url}/api/v1/cases/{case['id']}/advice",
                    json=ADVICE,
                    headers=_login(a.url, "med1"),
                    timeout=10,
                )
                assert r.status_code == 201, r.text
                _, event = wait_for(
                    lambda: spoke.first("advice.issued"), 10, what="advice via process B"
                )
                assert (
                    event["advice"]["assessment"] == "Probable TB."
                    and event["case_id"] == case["id"]
                )
                online = requests.get(
                    f"{a.url}/api/v1/presence", headers=_login(a.url, "sup1"), timeout=10
                ).json()
                assert "PHC-1" in online["spokes"]
            finally:
                spoke.close()
