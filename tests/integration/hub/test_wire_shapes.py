"""Every answer of the REST API has exactly the shape its OpenAPI schema (shared/wire.py, through
``@documented``) declares: the dicts hub/services/serialize.py builds and the schemas the
OpenAPI document is generated from cannot drift apart unnoticed.

A real workflow runs through the API (a case raised, claimed, messaged, advised, its images
stored, the dashboard read); each JSON answer is checked against the schema of its endpoint:
the same keys, nested shapes too, and values of the declared types (null only where allowed).
"""

from __future__ import annotations

from datetime import date, datetime
from io import BytesIO
from typing import Any

from flask.testing import FlaskClient
from marshmallow import Schema, fields
from pydicom import dcmwrite

from hub.api.openapi import CONTRACTS
from shared.multipart import build_related
from shared.wire import CaseSchema
from tests.dicomgen import make_ct_series
from tests.integration.hub.conftest import ADVICE, HubHarness

_TYPES: dict[type[fields.Field[Any]], tuple[type, ...]] = {
    fields.String: (str,),
    fields.Integer: (int,),
    fields.Float: (int, float),
    fields.Number: (int, float),
    fields.Boolean: (bool,),
    fields.Dict: (dict,),
    fields.List: (list,),
}


def shape_errors(schema: Schema, value: Any, where: str = "") -> list[str]:
    if not isinstance(value, dict):
        return [f"{where or '.'}: {type(value).__name__}, not an object"]
    declared = {(f.data_key or name): f for name, f in schema.fields.items()}
    errors = [f"{where}.{k}: not in {type(schema).__name__}" for k in value.keys() - declared]
    errors += [f"{where}.{k}: missing" for k in declared.keys() - value.keys()]
    for key, field in declared.items():
        if key in value:
            errors += _field_errors(field, value[key], f"{where}.{key}")
    return errors


def _field_errors(field: fields.Field[Any], value: Any, where: str) -> list[str]:
    if value is None:
        return [] if field.allow_none else [f"{where}: null, but the schema does not allow it"]
    if isinstance(field, fields.Nested):
        nested = field.schema
        items = value if field.many else [value]
        return [e for i, item in enumerate(items) for e in shape_errors(nested, item, f"{where}")]
    if isinstance(field, fields.List):
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [e for item in value for e in _field_errors(field.inner, item, f"{where}[]")]
    if isinstance(field, fields.DateTime | fields.Date):
        parse = date.fromisoformat if type(field) is fields.Date else datetime.fromisoformat
        try:
            parse(str(value))
        except ValueError:
            return [f"{where}: {value!r} is not an ISO date"]
        return []
    allowed = _TYPES.get(type(field))
    if allowed and (
        not isinstance(value, allowed) or (bool not in allowed and isinstance(value, bool))
    ):
        return [f"{where}: {value!r} is not {type(field).__name__}"]
    return []


class CheckedClient:
    """The test client, checking each JSON answer against its endpoint's declared schema."""

    def __init__(self, hub: HubHarness) -> None:
        self.hub = hub
        self.client: FlaskClient = hub.client
        self.checked: set[str] = set()
        self.errors: list[str] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.open(path, method=method, **kwargs)
        assert response.status_code < 400, (method, path, response.get_json())
        endpoint, _ = self.hub.app.url_map.bind("localhost").match(path, method=method)
        contract = CONTRACTS.get(endpoint)
        if contract is not None and contract.answer is not None:
            body = response.get_json()
            schema = contract.answer()
            for item in body if contract.many else [body]:
                self.errors += [f"{method} {path}{e}" for e in shape_errors(schema, item)]
            self.checked.add(endpoint)
        return response.get_json()


def test_every_answer_of_a_workflow_has_its_declared_shape(hub: HubHarness) -> None:
    api = CheckedClient(hub)
    ortho, sup = hub.login("ortho1"), hub.login("sup1")
    case = api("POST", "/api/v1/cases", json=_case(), headers=hub.spoke())
    cid = case["id"]
    api("GET", "/api/v1/me", headers=ortho)
    api("GET", "/api/v1/specialties", headers=ortho)
    api("GET", "/api/v1/specialties/ortho/hours", headers=ortho)
    api("GET", "/api/v1/cases", headers=ortho)
    api("POST", f"/api/v1/cases/{cid}/claim", headers=ortho)
    api("POST", f"/api/v1/cases/{cid}/messages", json={"text": "Any numbness?"}, headers=ortho)
    api("GET", f"/api/v1/cases/{cid}/messages", headers=ortho)
    body, content_type = build_related([_dicom(case["accession_number"])])
    headers = {**hub.spoke(), "Content-Type": content_type}
    assert hub.client.post("/dicomweb/studies", data=body, headers=headers).status_code == 200
    api("GET", f"/api/v1/cases/{cid}/studies", headers=ortho)
    api("POST", f"/api/v1/cases/{cid}/advice", json=ADVICE, headers=ortho)
    api("GET", f"/api/v1/cases/{cid}/advice", headers=ortho)
    api("GET", f"/api/v1/cases/{cid}", headers=ortho)
    api("GET", f"/api/v1/cases/{cid}/history", headers=ortho)
    api("GET", "/api/v1/specialists", headers=sup)
    api("GET", "/api/v1/supervision", headers=sup)
    api("GET", "/api/v1/dashboard/summary", headers=sup)

    assert api.errors == []
    assert len(api.checked) >= 15
    drifted = {**api("GET", f"/api/v1/cases/{cid}", headers=ortho), "surprise": 1}
    del drifted["token"]
    assert sorted(shape_errors(CaseSchema(), drifted)) == [
        ".surprise: not in CaseSchema",
        ".token: missing",
    ]


def test_the_other_answers_have_their_declared_shape_too(hub: HubHarness) -> None:
    api = CheckedClient(hub)
    login = {"username": "ortho1", "password": "demo"}
    ortho = {
        "Authorization": "Bearer " + api("POST", "/api/v1/auth/token", json=login)["access_token"]
    }
    admin, sup = hub.login("admin"), hub.login("sup1")
    new_user = {"username": "ortho2", "password": "a long passphrase", "role": "specialist"}
    ortho2 = api(
        "POST", "/api/v1/users", json={**new_user, "specialties": ["ortho"]}, headers=admin
    )
    api("PATCH", f"/api/v1/specialists/{ortho2['id']}", json={"max_active_cases": 4}, headers=admin)
    api("PUT", "/api/v1/specialties/ortho/hours", json={"hours": "24h"}, headers=admin)
    choice = {"specialty": "ortho", "doctor": "clinic1", "specialist": "ortho2"}
    api("POST", "/api/v1/supervision/reassign", json=choice, headers=sup)

    asked = hub.raise_case(raised_by="clinic3")["id"]
    api("POST", f"/api/v1/cases/{asked}/claim", headers=ortho)
    api("POST", f"/api/v1/cases/{asked}/request-info", json={"text": "Which hand?"}, headers=ortho)
    api("POST", f"/api/v1/cases/{asked}/provide-info", json={"text": "Left."}, headers=hub.spoke())
    api("POST", f"/api/v1/cases/{asked}/release", headers=ortho)
    api("POST", f"/api/v1/cases/{asked}/reassign", json={"specialist": "ortho2"}, headers=sup)
    referred = hub.raise_case(raised_by="clinic3")["id"]
    referral = {"reason": "Open fracture.", "instructions": "Splint, nil by mouth."}
    api("POST", f"/api/v1/cases/{referred}/claim", headers=ortho)
    api("POST", f"/api/v1/cases/{referred}/refer", json=referral, headers=ortho)
    advised = hub.raise_case(raised_by="clinic3")["id"]
    api("POST", f"/api/v1/cases/{advised}/advice", json=ADVICE, headers=ortho)
    api("POST", f"/api/v1/cases/{advised}/close", headers=hub.spoke())
    api("POST", f"/api/v1/cases/{hub.raise_case()['id']}/cancel", headers=hub.spoke())

    assert api.errors == []
    assert len(api.checked) >= 12


def _case() -> dict[str, Any]:
    from tests.integration.hub.conftest import case_body

    return case_body()


def _dicom(accession: str) -> bytes:
    out = BytesIO()
    dcmwrite(out, make_ct_series(1, accession_number=accession)[0], enforce_file_format=True)
    return out.getvalue()
