"""The hub's pages in-process: sign-in into the session, role checks, CSRF on session-authenticated
calls, the Content-Security-Policy, escaping, the session on Socket.IO, and languages."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from tests.integration.hub.conftest import ADVICE, HubHarness

pytestmark = pytest.mark.usefixtures("database_url")


def _csrf(client: FlaskClient, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def sign_in(hub: HubHarness, username: str) -> str:
    token = _csrf(hub.client)
    r = hub.client.post(
        "/login", data={"username": username, "password": "demo", "csrf_token": token}
    )
    assert r.status_code == 302, r.get_data(as_text=True)
    return _csrf(hub.client, r.headers["Location"])


def test_sign_in_sets_an_httponly_samesite_session_and_redirects_by_role(hub: HubHarness) -> None:
    token = _csrf(hub.client)
    r = hub.client.post(
        "/login", data={"username": "ortho1", "password": "demo", "csrf_token": token}
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/worklist")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_wrong_password_and_missing_csrf_are_refused(hub: HubHarness) -> None:
    token = _csrf(hub.client)
    assert (
        hub.client.post(
            "/login", data={"username": "ortho1", "password": "x", "csrf_token": token}
        ).status_code
        == 401
    )
    assert (
        hub.client.post("/login", data={"username": "ortho1", "password": "demo"}).status_code
        == 400
    )


def test_pages_need_sign_in_and_the_right_role(hub: HubHarness) -> None:
    assert hub.client.get("/worklist").status_code == 302
    sign_in(hub, "ortho1")
    assert hub.client.get("/worklist").status_code == 200
    assert hub.client.get("/dashboard").status_code == 403
    assert hub.client.get("/admin/users").status_code == 403


def test_every_page_has_a_csp_without_inline_code(hub: HubHarness) -> None:
    case = hub.raise_case(complaint="<script>alert(1)</script> wrist")
    for user, paths in {
        "ortho1": ["/worklist", f"/cases/{case['id']}"],
        "sup1": ["/dashboard"],
        "admin": [
            "/admin/users",
            "/admin/spokes",
            "/admin/specialties",
            "/admin/supervision",
            "/admin/duty",
        ],
    }.items():
        hub.client.post("/logout", data={"csrf_token": _csrf(hub.client)})
        sign_in(hub, user)
        for path in paths:
            r = hub.client.get(path)
            assert r.status_code == 200, (path, r.get_data(as_text=True)[:300])
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            html = r.get_data(as_text=True)
            assert "<script>alert" not in html
            assert not re.search(r"<script(?![^>]*\bsrc=)", html), path  # no inline scripts
            assert not re.search(r"\sstyle=", html), path  # no inline styles
            assert not re.search(r"\son[a-z]+=", html), path  # no inline handlers


def test_session_calls_to_the_api_need_the_csrf_token(hub: HubHarness) -> None:
    case = hub.raise_case()
    csrf = sign_in(hub, "ortho1")
    assert (
        hub.client.get(f"/api/v1/cases/{case['id']}").status_code == 200
    )  # reads: the cookie is enough
    assert hub.client.post(f"/api/v1/cases/{case['id']}/claim").status_code == 403
    r = hub.client.post(f"/api/v1/cases/{case['id']}/claim", headers={"X-CSRFToken": csrf})
    assert r.status_code == 200, r.json
    r = hub.client.post(
        f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers={"X-CSRFToken": csrf}
    )
    assert r.status_code == 201, r.json
    page = hub.client.get(f"/cases/{case['id']}/live").get_data(as_text=True)
    assert "Undisplaced distal radius fracture." in page


def test_the_bearer_api_needs_no_csrf_token(hub: HubHarness) -> None:
    case = hub.raise_case()
    r = hub.client.post(f"/api/v1/cases/{case['id']}/claim", headers=hub.login("ortho1"))
    assert r.status_code == 200, r.json


def test_logout_revokes_the_token(hub: HubHarness) -> None:
    csrf = sign_in(hub, "ortho1")
    assert hub.client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert hub.client.get("/api/v1/me").status_code == 401
    assert hub.client.get("/worklist").status_code == 302


def test_socket_connects_with_the_page_session(hub: HubHarness) -> None:
    sign_in(hub, "ortho1")
    sio = hub.app.extensions["teleconsult.socketio"]
    client = sio.test_client(hub.app, flask_test_client=hub.client)
    assert client.is_connected()
    hub.raise_case()
    assert any(
        e["name"] == "case.assigned" or e["name"] == "case.updated" for e in client.get_received()
    )
    client.disconnect()


def test_worklist_lists_own_cases_then_pool_and_the_viewer_index(hub: HubHarness) -> None:
    case = hub.raise_case()
    sign_in(hub, "ortho1")
    html = hub.client.get("/worklist/rows").get_data(as_text=True)
    assert case["token"] in html
    r = hub.client.get(f"/cases/{case['id']}/images")
    assert r.status_code == 200 and r.json == {"series": []}


def test_a_handled_case_stays_reachable_from_the_worklist(hub: HubHarness) -> None:
    case = hub.raise_case()
    hub.client.post(f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=hub.login("ortho1"))
    sign_in(hub, "ortho1")
    html = hub.client.get("/worklist/rows").get_data(as_text=True)
    handled = html.split('id="handled"', 1)
    assert len(handled) == 2 and case["token"] in handled[1] and "advised" in handled[1]


def test_images_of_another_patient_id_are_flagged_on_the_case_page(hub: HubHarness) -> None:
    from io import BytesIO

    from pydicom import dcmwrite

    from shared.multipart import build_related
    from tests.dicomgen import make_ct_series

    def stow(accession: str, patient_id: str) -> None:
        out = BytesIO()
        dcmwrite(
            out,
            make_ct_series(1, accession_number=accession, patient_id=patient_id)[0],
            enforce_file_format=True,
        )
        body, content_type = build_related([out.getvalue()])
        r = hub.client.post(
            "/dicomweb/studies", data=body, headers={**hub.spoke(), "Content-Type": content_type}
        )
        assert r.status_code == 200, r.json

    right, wrong = hub.raise_case(), hub.raise_case()
    stow(right["accession_number"], right["patient"]["pseudonym"])
    stow(wrong["accession_number"], "SOMEONE-ELSE")
    sign_in(hub, "ortho1")
    assert 'id="patient-mismatch"' not in hub.client.get(f"/cases/{right['id']}").get_data(
        as_text=True
    )
    page = hub.client.get(f"/cases/{wrong['id']}").get_data(as_text=True)
    assert 'id="patient-mismatch"' in page and "SOMEONE-ELSE" in page


def test_language_is_kept_per_user(hub: HubHarness) -> None:
    csrf = sign_in(hub, "ortho1")
    r = hub.client.post(
        "/language", data={"language": "ru", "csrf_token": csrf, "next": "/worklist"}
    )
    assert r.status_code == 302
    assert hub.client.get("/api/v1/me").json["language"] == "ru"
    html = hub.client.get("/worklist").get_data(as_text=True)
    assert 'lang="ru"' in html and "Рабочий список" in html


def test_supervisor_reassigns_from_the_dashboard(hub: HubHarness) -> None:
    case = hub.raise_case()
    csrf = sign_in(hub, "sup1")
    assert case["token"] in hub.client.get("/dashboard/live").get_data(as_text=True)
    r = hub.client.post(
        f"/api/v1/cases/{case['id']}/reassign",
        json={"specialist": "ortho1"},
        headers={"X-CSRFToken": csrf},
    )
    assert r.status_code in (200, 409), r.json
