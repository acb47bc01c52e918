"""When the link to the hub comes back, the clinic's workers send what waited at once: the
Socket.IO connection wakes the outbox and the image uploads, which may otherwise sleep out a
backoff of up to a minute after an outage."""

from __future__ import annotations

from pathlib import Path

from tests.support.spoke import make_app, services, spoke_settings


def test_a_connection_to_the_hub_wakes_the_outbox_and_the_uploads(tmp_path: Path) -> None:
    app = make_app(spoke_settings(tmp_path, "http://127.0.0.1:9", "token"))
    s = services(app)
    try:
        assert s.uploads is not None
        assert not s.outbox._wake.is_set() and not s.uploads._wake.is_set()
        s.hub_client.catch_up = lambda: None  # type: ignore[method-assign]  # no hub here
        s.hub_client._on_connect()  # what python-socketio calls on every (re)connection
        assert s.outbox._wake.is_set() and s.uploads._wake.is_set()
    finally:
        s.db.dispose()
