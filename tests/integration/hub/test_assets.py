"""The pages' Socket.IO client comes from the hub itself, installed from npm (no CDN)."""

from __future__ import annotations

from pathlib import Path

from hub.app import create_app
from teleconsult.assets import FILES
from tests.conftest import need


def test_the_hub_serves_the_socketio_client_and_nothing_else(tmp_path: Path) -> None:
    need(FILES["socket.io.min.js"].exists(), "web/node_modules is missing: run scripts/assets")
    client = create_app(
        test_config={"async_mode": "threading", "data_dir": str(tmp_path)}
    ).test_client()
    r = client.get("/assets/socket.io.min.js")
    assert r.status_code == 200 and b"socket.io" in r.data.lower()
    assert "javascript" in r.headers["Content-Type"]
    for bad in ("/assets/package.json", "/assets/..%2F..%2Fsetup.cfg", "/assets/socket.io.js"):
        assert client.get(bad).status_code == 404
