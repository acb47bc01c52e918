"""Fixtures of the spoke tests that need a real hub process: the hub (one per module), a spoke
app talking to it, the app with its workers running, its test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.hub import RunningHub, hub_process
from tests.support.spoke import make_app, services, spoke_settings


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """One real hub (demo accounts) for the tests of a module."""
    with hub_process(tmp_path_factory.mktemp("hub")) as running:
        yield running


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
