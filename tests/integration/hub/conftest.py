"""An in-process hub on a real, migrated database, with the demo accounts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hub.app import create_app
from shared.clock import FrozenClock
from tests.support.hub import prepare_hub_db

# Accounts seeded by seed_demo (password "demo"); others are added with NEW_PASSWORD.
DEMO_USERS = frozenset(
    {"admin", "sup1", "ortho1", "radio1", "med1", "ent1", "eye1"}
    | {f"clinic{n}" for n in range(1, 6)}
)
NEW_PASSWORD = "a long passphrase"


@dataclass
class HubHarness:
    app: Flask
    client: FlaskClient
    clock: FrozenClock
    spoke_tokens: dict[str, str]

    def login(self, username: str, password: str | None = None) -> dict[str, str]:
        """Sign in: demo accounts with ``demo``, accounts a test added with ``NEW_PASSWORD``."""
        if password is None:
            password = "demo" if username in DEMO_USERS else NEW_PASSWORD
        r = self.client.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )
        assert r.status_code == 200, r.json
        return {"Authorization": "Bearer " + r.json["access_token"]}

    def spoke(self, code: str = "PHC-1") -> dict[str, str]:
        return {"Authorization": "Bearer " + self.spoke_tokens[code]}

    def socket(self, token: str) -> Any:
        sio = self.app.extensions["teleconsult.socketio"]
        return sio.test_client(self.app, auth={"token": token}, flask_test_client=self.client)

    def raise_case(self, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        r = self.client.post(
            "/api/v1/cases", json=case_body(**fields), headers=headers or self.spoke()
        )
        assert r.status_code == 201, r.json
        return dict(r.get_json())


def case_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": {"pseudonym": "PT-0001", "age": 42, "sex": "female"},
        "complaint": "Swelling of the right wrist after a fall",
        "history": "Fell from a bicycle two days ago.",
        "vitals": {"pulse": 88, "bp_systolic": 128, "bp_diastolic": 82},
        "question": "Fracture of the distal radius? Plaster or refer?",
        "specialty": "ortho",
        "priority": "urgent",
        "raised_by": "clinic1",
    }
    body.update(fields)
    return body


ADVICE = {
    "assessment": "Undisplaced distal radius fracture.",
    "recommendations": "Below-elbow cast for 4 weeks; elevate; review in 1 week.",
    "disposition": "manage_locally",
    "prescriptions": [
        {
            "drug": "Paracetamol",
            "strength": "500 mg",
            "dose": "1 tablet",
            "route": "oral",
            "frequency": "every 6 hours",
            "duration": "5 days",
            "instructions": "after food",
        }
    ],
    "investigations": "X-ray after 1 week",
    "follow_up_date": "2026-12-01",
}


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[HubHarness]:
    tokens = prepare_hub_db(database_url)
    clock = FrozenClock()
    app = create_app(
        test_config={
            "async_mode": "threading",
            "data_dir": str(tmp_path / "hub"),
            "database_url": database_url,
        },
        clock=clock,
    )
    app.config["TESTING"] = True
    with app.test_client() as client:
        yield HubHarness(app, client, clock, tokens)
    app.extensions["teleconsult"].db.dispose()
