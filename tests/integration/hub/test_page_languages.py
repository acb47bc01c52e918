"""Every hub page a user opens (worklist, case, dashboard, admin) is in the chosen language: no
text on it is a catalogued English string left untranslated."""

from __future__ import annotations

import gettext
import re
from html.parser import HTMLParser

import pytest

from teleconsult.i18n import compile_catalogs
from tests.dicomgen import make_ct_series
from tests.integration.hub.conftest import ADVICE, HubHarness
from tests.integration.hub.test_images_followup import _stow

pytestmark = pytest.mark.usefixtures("database_url")
# Catalogued words that are also data on these pages (the admin account is called "admin",
DATA = {"admin", "Teleconsult hub"}  # and the configured hub_name of the letterhead


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code"):
            self._skip += 1
        for name, value in attrs:  # what users read besides text: placeholders, labels, titles
            if name in ("placeholder", "aria-label", "title") and value:
                self.texts.append(value.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.texts.append(" ".join(data.split()))


def untranslated(html: str, language: str) -> list[str]:
    """The text pieces of ``html`` that are English strings the catalog translates."""
    tr = gettext.translation("messages", str(compile_catalogs()), languages=[language])
    catalog = tr._catalog  # type: ignore[attr-defined]
    english = {
        key
        for key, value in catalog.items()
        if isinstance(key, str) and key and value and value != key and key not in DATA
    }
    parser = _Text()
    parser.feed(html)
    return sorted({t for t in parser.texts if t in english})


def _sign_in(hub: HubHarness, username: str, language: str) -> None:
    hub.client.post("/logout", data={"csrf_token": _csrf(hub, "/login")})
    token = _csrf(hub)
    hub.client.post("/language", data={"language": language, "next": "/login", "csrf_token": token})
    r = hub.client.post(
        "/login", data={"username": username, "password": "demo", "csrf_token": _csrf(hub)}
    )
    assert r.status_code == 302


def _csrf(hub: HubHarness, path: str = "/login") -> str:
    found = re.search(
        r'name="csrf-token" content="([^"]+)"', hub.client.get(path).get_data(as_text=True)
    )
    assert found
    return found[1]


@pytest.mark.parametrize("language", ["hi", "vi", "ru"])
def test_hub_pages_have_no_untranslated_strings(hub: HubHarness, language: str) -> None:
    case = hub.raise_case()
    ortho = hub.login("ortho1")
    if (case.get("assigned_to") or {}).get("username") != "ortho1":
        hub.client.post(f"/api/v1/cases/{case['id']}/claim", headers=ortho)
    _stow(hub, make_ct_series(2, accession_number=case["accession_number"]))
    hub.client.post(f"/api/v1/cases/{case['id']}/messages", json={"text": "X-ray?"}, headers=ortho)
    hub.raise_case(priority="emergency", specialty="eye")
    pages = {
        "ortho1": ["/worklist", "/worklist/rows", f"/cases/{case['id']}"],
        "sup1": ["/dashboard", f"/cases/{case['id']}"],
        "admin": [
            "/admin/users",
            "/admin/spokes",
            "/admin/specialties",
            "/admin/supervision",
            "/admin/duty",
        ],
    }
    found = {}
    for username, paths in pages.items():
        _sign_in(hub, username, language)
        for path in paths:
            r = hub.client.get(path)
            assert r.status_code == 200, (path, r.status_code)
            html = r.get_data(as_text=True)
            assert f'<html lang="{language}">' in html or path.endswith("/rows")
            if left := untranslated(html, language):
                found[path] = left
    # After the advice: the advice, the history and the worklist's handled list.
    hub.client.post(f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=ortho)
    _sign_in(hub, "ortho1", language)
    for path in ("/worklist", f"/cases/{case['id']}"):
        if left := untranslated(hub.client.get(path).get_data(as_text=True), language):
            found[path + " (advised)"] = left
    assert not found, found
    # Specialty names and validation messages too.
    page = hub.client.get("/worklist").get_data(as_text=True)
    assert "Orthopaedics" not in page
    r = hub.client.post(
        f"/api/v1/cases/{case['id']}/advice",
        json={**ADVICE, "prescriptions": [{"drug": "X"}]},
        headers={"X-CSRFToken": _csrf(hub, "/worklist")},
    )
    assert r.status_code == 400
    messages = r.json["error"]["fields"]["prescriptions"]["0"]["dose"]
    assert messages and messages[0] != "Missing data for required field."
    assert r.json["error"]["message"] != "Some fields are missing or invalid."
