"""The pages offer an action exactly when the API would accept it: both read the lifecycle's
named sets (``hub.domain.lifecycle``), so a page never shows a form the API answers with 409."""

from __future__ import annotations

from tests.integration.hub.conftest import ADVICE, HubHarness
from tests.integration.hub.test_pages import sign_in


def test_a_case_waiting_for_the_clinic_offers_no_advice_form(hub: HubHarness) -> None:
    case = hub.raise_case()
    ortho1 = hub.login("ortho1")
    r = hub.client.post(
        f"/api/v1/cases/{case['id']}/request-info", json={"text": "X-ray please"}, headers=ortho1
    )
    assert r.status_code == 200 and r.json["status"] == "needs_info"
    refused = hub.client.post(f"/api/v1/cases/{case['id']}/advice", json=ADVICE, headers=ortho1)
    assert refused.status_code == 409
    sign_in(hub, "ortho1")
    page = hub.client.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert 'id="advice-form"' not in page
    assert 'data-action="release"' not in page  # the API refuses a release too


def test_an_assigned_case_offers_advice_release_and_claim(hub: HubHarness) -> None:
    case = hub.raise_case()
    sign_in(hub, "ortho1")
    page = hub.client.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert 'id="advice-form"' in page and 'data-action="release"' in page
    assert 'data-action="claim"' in page


def test_the_dashboard_offers_no_reassign_for_a_case_waiting_for_the_clinic(
    hub: HubHarness,
) -> None:
    case = hub.raise_case()
    hub.client.post(
        f"/api/v1/cases/{case['id']}/request-info",
        json={"text": "X-ray please"},
        headers=hub.login("ortho1"),
    )
    refused = hub.client.post(
        f"/api/v1/cases/{case['id']}/reassign",
        json={"specialist": "ortho1"},
        headers=hub.login("sup1"),
    )
    assert refused.status_code == 409
    sign_in(hub, "sup1")
    html = hub.client.get("/dashboard/live").get_data(as_text=True)
    assert case["token"] in html and f'data-case="{case["id"]}"' not in html
