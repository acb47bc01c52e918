"""Finding 6: a page on another site must not open a Socket.IO connection with a signed-in
user's cookie. A real hub process under eventlet and a real python-socketio client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from tests.support.hub import RunningHub, hub_process


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    with hub_process(
        tmp_path_factory.mktemp("origin"),
        async_mode="eventlet",
        extra_env={"TELECONSULT_HUB_ALLOWED_ORIGINS": "https://clinic-portal.example"},
    ) as running:
        yield running


def _signed_in_cookie(hub: RunningHub) -> str:
    """The session cookie of a supervisor signed in on the hub's page, as a browser holds it."""
    browser = requests.Session()
    html = browser.get(f"{hub.url}/login", timeout=10).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert token
    answer = browser.post(
        f"{hub.url}/login",
        data={"username": "sup1", "password": "demo", "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302
    return "; ".join(f"{c.name}={c.value}" for c in browser.cookies)


def _connect(hub: RunningHub, origin: str, cookie: str) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.connect(
        hub.url,
        headers={"Origin": origin, "Cookie": cookie},
        transports=["polling"],
        wait_timeout=10,
    )
    return client


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_a_foreign_page_cannot_connect_with_the_users_cookie(
    hub: RunningHub, transport: str, tmp_path: Path
) -> None:
    cookie = _signed_in_cookie(hub)
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(
            hub.url,
            headers={"Origin": "http://evil.example", "Cookie": cookie},
            transports=[transport],
            wait_timeout=10,
        )
    assert not client.connected


def test_the_hubs_own_pages_and_configured_origins_connect(hub: RunningHub) -> None:
    cookie = _signed_in_cookie(hub)
    for origin in (hub.url, "https://clinic-portal.example"):
        client = _connect(hub, origin, cookie)
        assert client.connected
        client.disconnect()


def test_clients_that_are_not_browsers_still_connect_with_a_token(hub: RunningHub) -> None:
    client = socketio.Client(reconnection=False)
    client.connect(hub.url, auth={"token": hub.spoke_tokens["PHC-1"]}, wait_timeout=10)
    assert client.connected
    client.disconnect()
