"""The spoke's authorization matrix: every route of its ``app.url_map`` against every kind of
caller, with the expected outcome in ONE table; a route missing from it fails the test.

A spoke serves one clinic, whose doctors all see all its cases, so its only question is who the
caller is: a clinic doctor of this spoke (page session or bearer token), the spoke's own machine
(the bridge, with the service token), or nobody. Refused means 401, 403 or the sign-in page;
allowed means anything else but a 5xx (a 404 for an unknown case is no refusal here).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient

from tests.support.hub import RunningHub
from tests.support.spoke import (
    api_token,
    case_body,
    csrf_of,
    make_app,
    services,
    sign_in_page,
    spoke_settings,
)

ROLES = ("anon", "doctor", "service")
PUBLIC = frozenset(ROLES)
DOCTOR = frozenset({"doctor"})
SERVICE = frozenset({"service"})


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    json: Any = None
    form: dict[str, str] | None = None
    public: bool = False
    fresh_login: bool = False


def rule(allowed: frozenset[str], **kw: Any) -> Rule:
    return Rule(allowed, **kw)


def public(**kw: Any) -> Rule:
    return Rule(PUBLIC, public=True, **kw)


MATRIX: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): public(),
    ("GET", "/static/<path:filename>"): public(),
    ("GET", "/assets/<name>"): public(),
    ("GET", "/signin"): public(),
    ("POST", "/signin"): public(form={"username": "nobody", "password": "x"}),
    ("POST", "/signout"): public(form={}, fresh_login=True),
    ("POST", "/language"): public(form={"language": "hi"}),
    ("POST", "/api/v1/auth/token"): public(json={"username": "nobody", "password": "x"}),
    ("POST", "/api/v1/auth/logout"): rule(DOCTOR, fresh_login=True),
    ("POST", "/api/v1/cases"): rule(DOCTOR, json=case_body()),
    ("GET", "/api/v1/cases"): rule(DOCTOR),
    ("GET", "/api/v1/cases/<uid>"): rule(DOCTOR),
    ("GET", "/api/v1/inbox"): rule(DOCTOR),
    ("POST", "/api/v1/inbox/<study_uid>/attach"): rule(DOCTOR, json={"case_uid": "x"}),
    ("GET", "/api/v1/worklist"): rule(SERVICE),
    ("PUT", "/api/v1/cases/<uid>/images-progress"): rule(
        SERVICE, json={"received": 1, "confirmed": 1, "refused": 0}
    ),
    ("GET", "/"): rule(DOCTOR),
    ("GET", "/cases/rows"): rule(DOCTOR),
    ("GET", "/live"): rule(DOCTOR),
    ("GET", "/cases/new"): rule(DOCTOR),
    ("POST", "/cases/new"): rule(DOCTOR, form={"complaint": ""}),
    ("GET", "/cases/<uid>"): rule(DOCTOR),
    ("GET", "/cases/<uid>/live"): rule(DOCTOR),
    ("POST", "/cases/<uid>/messages"): rule(DOCTOR, form={"text": ""}),
    ("POST", "/api/v1/cases/<uid>/messages"): rule(DOCTOR, json={"text": ""}),
    ("GET", "/cases/<uid>/advice/<int:version>.pdf"): rule(DOCTOR),
    ("POST", "/cases/<uid>/close"): rule(DOCTOR, form={}),
    ("POST", "/cases/<uid>/cancel"): rule(DOCTOR, form={}),
    ("POST", "/api/v1/cases/<uid>/cancel"): rule(DOCTOR, json={}),
    ("POST", "/cases/<uid>/uploads"): rule(DOCTOR, form={}),
    ("GET", "/inbox"): rule(DOCTOR),
    ("POST", "/inbox/<study_uid>/attach"): rule(DOCTOR, form={"case_uid": "x"}),
}


@pytest.fixture
def spoke_app(tmp_path: Path, hub: RunningHub) -> Iterator[Flask]:
    app = make_app(spoke_settings(tmp_path, hub.url, hub.spoke_tokens["PHC-1"]))
    yield app
    services(app).db.dispose()


def _routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (m, r.rule)
        for r in app.url_map.iter_rules()
        for m in r.methods or ()
        if m not in ("HEAD", "OPTIONS")
    }


def test_every_spoke_route_has_a_row(spoke_app: Flask) -> None:
    routes = _routes(spoke_app)
    assert not sorted(routes - MATRIX.keys()), "spoke routes without an authorization rule"
    assert not sorted(MATRIX.keys() - routes), "stale rows"


def _client(app: Flask, role: str, hub: RunningHub) -> tuple[FlaskClient, dict[str, str]]:
    client = app.test_client()
    if role == "doctor":
        sign_in_page(client, "clinic1")
        return client, {"Authorization": f"Bearer {api_token(client, 'clinic1')}"}
    if role == "service":
        return client, {"Authorization": f"Bearer {hub.spoke_tokens['PHC-1']}"}
    return client, {}


def test_every_spoke_route_against_every_caller(spoke_app: Flask, hub: RunningHub) -> None:
    case_uid = services(spoke_app).store.raise_case(case_body(), "clinic1")["uid"]
    clients = {role: _client(spoke_app, role, hub) for role in ROLES}
    wrong = []
    for (method, path_rule), row in sorted(MATRIX.items()):
        endpoint = next(r.endpoint for r in spoke_app.url_map.iter_rules() if r.rule == path_rule)
        args = {
            "uid": case_uid,
            "study_uid": "1.2.3",
            "filename": "spoke.css",
            "name": "socket.io.min.js",
            "version": 1,
        }
        needed = next(r for r in spoke_app.url_map.iter_rules() if r.rule == path_rule).arguments
        with spoke_app.test_request_context():
            url = url_for(endpoint, **{k: args[k] for k in needed})
        for role in ROLES:
            client, headers = clients[role]
            if row.fresh_login:
                client, headers = _client(spoke_app, role, hub)
            kwargs: dict[str, Any] = {}
            if row.json is not None:
                kwargs["json"] = row.json
            if row.form is not None:
                form = dict(row.form)
                form["csrf_token"] = csrf_of(client.get("/signin").get_data(as_text=True))
                kwargs["data"] = form
            answer = client.open(url, method=method, headers=headers, **kwargs)
            status = answer.status_code
            if status >= 500:
                wrong.append(f"{method} {path_rule} as {role}: {status}")
                continue
            if row.public:
                continue
            refused = status in (401, 403) or (
                status == 302 and "/signin" in answer.headers.get("Location", "")
            )
            if refused == (role in row.allowed):
                wrong.append(f"{method} {path_rule} as {role}: {status}")
    assert not wrong, "\n".join(wrong)
