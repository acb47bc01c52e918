"""The clinic's e-prescription: the spoke makes the PDF from the advice it stored (so it prints
with the hub unreachable), and its QR code opens the hub's public verification."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from pypdf import PdfReader

from tests.support.hub import RunningHub
from tests.support.spoke import hub_token, services, sign_in_page

RX = [
    {
        "drug": name,
        "strength": strength,
        "dose": "1 tablet",
        "route": "oral",
        "frequency": "twice daily",
        "duration": "5 days",
        "instructions": "after food",
    }
    for name, strength in (
        ("Amoxicillin", "500 mg"),
        ("Paracetamol", "500 mg"),
        ("Cetirizine", "10 mg"),
    )
]


def _advise(hub: RunningHub, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A case of PHC-1 raised at the hub and advised there by its specialist."""
    spoke_auth = {"Authorization": f"Bearer {hub.spoke_tokens['PHC-1']}"}
    case = {
        "patient": {"pseudonym": "PT-Nguyễn-7", "age": 9, "sex": "female"},
        "complaint": "Ear pain for three days",
        "question": "Otitis media? Antibiotics?",
        "specialty": "ent",
        "priority": "routine",
        "raised_by": "clinic1",
    }
    raised = requests.post(f"{hub.url}/api/v1/cases", json=case, headers=spoke_auth, timeout=10)
    assert raised.status_code == 201, raised.text
    hub_case = raised.json()
    ent = {"Authorization": f"Bearer {hub_token(hub, 'ent1')}"}
    advice = {
        "assessment": "Acute otitis media, left.",
        "recommendations": "Keep the ear dry.",
        "disposition": "manage_locally",
        "prescriptions": RX,
        "investigations": "None",
        "follow_up_date": "2026-12-05",
        **body,
    }
    issued = requests.post(
        f"{hub.url}/api/v1/cases/{hub_case['id']}/advice", json=advice, headers=ent, timeout=10
    )
    assert issued.status_code == 201, issued.text
    return hub_case, issued.json()


def _receive(client: FlaskClient, hub: RunningHub, hub_case: dict[str, Any]) -> None:
    """What the spoke's hub client does when the advice arrives: mirror the case, store it."""
    spoke = services(client.application)
    spoke.store.mirror_cases([hub_case])
    spoke.store.store_advice(hub_case["uid"], spoke.hub_api.advice_for(hub_case["id"]))


def _qr(pdf: bytes) -> str:
    zxingcpp = pytest.importorskip("zxingcpp")
    images = PdfReader(io.BytesIO(pdf)).pages[0].images
    found = [r.text for i in images for r in zxingcpp.read_barcodes(i.image.convert("L"))]
    assert len(found) == 1
    return str(found[0])


def test_the_clinic_prints_the_pdf_offline_and_its_qr_verifies_at_the_hub(
    client: FlaskClient, hub: RunningHub
) -> None:
    hub_case, advice = _advise(hub, {})
    _receive(client, hub, hub_case)
    sign_in_page(client)
    page = client.get(f"/cases/{hub_case['uid']}").get_data(as_text=True)
    link = f"/cases/{hub_case['uid']}/advice/1.pdf"
    assert link in page  # the button on the clinic's case page

    # Made from the stored advice: no request to the hub is needed (its URL points nowhere now).
    spoke = services(client.application)
    spoke.settings = spoke.settings.replace(hub_url="http://127.0.0.1:9", hub_public_url=hub.url)
    answer = client.get(link)
    assert answer.status_code == 200 and answer.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(answer.data))
    text = reader.pages[0].extract_text()
    assert len(reader.pages) == 1
    for expected in (
        hub_case["token"],
        "PT-Nguyễn-7, 9 years, female",
        "Acute otitis media, left.",
        "Amoxicillin",
        "Cetirizine",
        "REG-ENT1",
        "05 Dec 2026",
        "v1",
    ):
        assert expected in text, expected
    url = _qr(answer.data)
    assert url == f"{hub.url}/verify/{advice['verification_code']}"
    checked = requests.get(url, headers={"Accept": "application/json"}, timeout=10)
    assert checked.status_code == 200 and checked.json()["status"] == "valid"
    assert client.get(f"/cases/{hub_case['uid']}/advice/2.pdf").status_code == 404
