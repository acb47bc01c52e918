"""Finding 2, as the clinic sees it: after another clinic named PHC-1's study in its own STOW
request, PHC-1's spoke still lists the study in its inbox (JSON and page), whole."""

from __future__ import annotations

from io import BytesIO

import requests
from flask.testing import FlaskClient
from pydicom import dcmwrite
from pydicom.dataset import Dataset

from shared.multipart import build_related
from tests.dicomgen import make_dx
from tests.support.hub import RunningHub
from tests.support.spoke import api_token, case_body, hub_token, sign_in_page


def _stow(hub: RunningHub, token: str, ds: Dataset, case_uid: str = "") -> requests.Response:
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    body, content_type = build_related([out.getvalue()])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    if case_uid:
        headers["X-Case-UID"] = case_uid
    return requests.post(f"{hub.url}/dicomweb/studies", data=body, headers=headers, timeout=20)


def test_another_clinic_cannot_take_a_study_from_this_clinics_inbox(
    client: FlaskClient, hub: RunningHub
) -> None:
    walk_in = make_dx(accession_number="WALK-IN-7")
    assert _stow(hub, hub.spoke_tokens["PHC-1"], walk_in).status_code == 200
    theirs = requests.post(
        f"{hub.url}/api/v1/cases",
        json=case_body(raised_by="clinic4"),
        headers={"Authorization": f"Bearer {hub.spoke_tokens['PHC-2']}"},
        timeout=20,
    ).json()
    grab = make_dx(accession_number="X")
    grab.StudyInstanceUID, grab.SeriesInstanceUID = (
        walk_in.StudyInstanceUID,
        walk_in.SeriesInstanceUID,
    )

    refused = _stow(hub, hub.spoke_tokens["PHC-2"], grab, theirs["uid"])

    assert refused.status_code == 409 and "held for another clinic" in refused.headers["Warning"]
    headers = {"Authorization": f"Bearer {api_token(client)}"}
    items = client.get("/api/v1/inbox", headers=headers).get_json()["items"]
    mine = [i for i in items if i["study_uid"] == walk_in.StudyInstanceUID]
    assert [(i["accession_number"], i["instances"]) for i in mine] == [("WALK-IN-7", 1)]
    sign_in_page(client)
    assert "WALK-IN-7" in client.get("/inbox").get_data(as_text=True)
    their_studies = requests.get(
        f"{hub.url}/api/v1/cases/{theirs['id']}/studies",
        headers={"Authorization": f"Bearer {hub_token(hub, 'clinic4')}"},
        timeout=20,
    )
    assert their_studies.status_code == 200 and their_studies.json() == []
