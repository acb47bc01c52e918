"""The e-prescription PDF, its public verification and the FHIR R4 export of a case (DESIGN.md,
"Documents and exchange"), through the hub's real routes on a real, migrated database."""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydicom import dcmwrite
from pypdf import PdfReader

from shared.multipart import build_related
from tests.dicomgen import make_ct_series
from tests.integration.hub.conftest import ADVICE, HubHarness
from tests.integration.hub.test_pages import sign_in

THREE_DRUGS = [
    {
        "drug": "Paracetamol",
        "strength": "500 mg",
        "dose": "1 tablet",
        "route": "oral",
        "frequency": "every 6 hours",
        "duration": "5 days",
        "instructions": "after food; at most 4 g a day",
    },
    {
        "drug": "Ibuprofen",
        "strength": "400 mg",
        "dose": "1 tablet",
        "route": "oral",
        "frequency": "twice daily",
        "duration": "3 days",
        "instructions": "with food",
    },
    {
        "drug": "Omeprazole",
        "strength": "20 mg",
        "dose": "1 capsule",
        "route": "oral",
        "frequency": "once daily",
        "duration": "5 days",
        "instructions": "before breakfast",
    },
]


def _advised(hub: HubHarness, **advice: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A case of clinic1 (PHC-1) advised by ortho1 with a three-drug prescription."""
    case = hub.raise_case(patient={"pseudonym": "PT-Иван-0042", "age": 67, "sex": "male"})
    body = {**ADVICE, "prescriptions": THREE_DRUGS, **advice}
    r = hub.client.post(
        f"/api/v1/cases/{case['id']}/advice", json=body, headers=hub.login("ortho1")
    )
    assert r.status_code == 201, r.json
    return case, dict(r.get_json())


def _pdf(hub: HubHarness, case_id: int, version: int, who: dict[str, str]) -> Any:
    return hub.client.get(f"/api/v1/cases/{case_id}/advice/{version}.pdf", headers=who)


def _text(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), "\n".join(str(p.extract_text()) for p in reader.pages)


def _qr_url(pdf: bytes) -> str:
    """The URL in the page's QR code, decoded from the embedded image with zxing-cpp."""
    zxingcpp = pytest.importorskip("zxingcpp")
    reader = PdfReader(io.BytesIO(pdf))
    found = []
    for image in reader.pages[0].images:
        found += [r.text for r in zxingcpp.read_barcodes(image.image.convert("L"))]
    assert len(found) == 1, found
    return str(found[0])


def _verify(hub: HubHarness, url: str, accept: str = "application/json") -> Any:
    path = urlsplit(url).path
    return hub.client.get(path, headers={"Accept": accept})


def test_the_pdf_of_a_three_drug_prescription_is_one_a4_page_with_every_field(
    hub: HubHarness,
) -> None:
    case, advice = _advised(hub)
    r = _pdf(hub, case["id"], 1, hub.login("clinic1"))
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    pages, text = _text(r.data)
    assert pages == 1, text
    box = PdfReader(io.BytesIO(r.data)).pages[0].mediabox
    assert (round(float(box.width) / 72 * 25.4), round(float(box.height) / 72 * 25.4)) == (210, 297)
    for expected in (
        "Teleconsult hub",  # letterhead: the hub ...
        "PHC-1",  # ... and the clinic
        case["token"],
        "PT-Иван-0042, 67 years, male",
        ADVICE["assessment"],
        "Investigations",
        ADVICE["investigations"],
        "Follow-up",
        "01 Dec 2026",
        "REG-ORTHO1",
        advice["specialist"]["name"],
        "v1",
    ):
        assert str(expected) in text, expected
    for drug in THREE_DRUGS:
        assert drug["drug"] in text and drug["strength"] in text and drug["frequency"] in text
    # Local date and time in the hub's zone (UTC here), never bare: the zone is named.
    assert re.search(r"\d\d \w{3} \d{4}, \d\d:\d\d UTC", text)
    assert "supersedes" not in text


def test_the_qr_code_verifies_valid_then_superseded_after_a_second_version(
    hub: HubHarness,
) -> None:
    case, first = _advised(hub)
    clinic = hub.login("clinic1")
    url = _qr_url(_pdf(hub, case["id"], 1, clinic).data)
    assert url.endswith("/verify/" + first["verification_code"])
    assert len(first["verification_code"]) >= 22  # >= 128 random bits in base64url
    anonymous = _verify(hub, url)
    assert anonymous.status_code == 200 and anonymous.headers["Cache-Control"] == "no-store"
    assert anonymous.json["status"] == "valid" and anonymous.json["token"] == case["token"]
    page = _verify(hub, url, "text/html")
    assert page.status_code == 200 and b'data-status="valid"' in page.data

    r = hub.client.post(
        f"/api/v1/cases/{case['id']}/advice",
        json={**ADVICE, "prescriptions": THREE_DRUGS, "assessment": "Displaced: refer."},
        headers=hub.login("ortho1"),
    )
    assert r.status_code == 201
    assert _verify(hub, url).json["status"] == "superseded"
    assert b'data-status="superseded"' in _verify(hub, url, "text/html").data
    second = _pdf(hub, case["id"], 2, clinic)
    pages, text = _text(second.data)
    assert pages == 1 and "v2 supersedes v1" in text
    assert _verify(hub, _qr_url(second.data)).json["status"] == "valid"
    _, old_text = _text(_pdf(hub, case["id"], 1, clinic).data)
    assert "SUPERSEDED by version 2" in old_text


def test_verification_shows_no_clinical_content_and_unknown_codes_are_404(
    hub: HubHarness,
) -> None:
    case, advice = _advised(hub)
    url = "/verify/" + advice["verification_code"]
    answer = dict(hub.client.get(url, headers={"Accept": "application/json"}).get_json())
    assert set(answer) == {"status", "token", "issued_at", "specialist", "hub"}
    page = hub.client.get(url).data.decode()
    shown = answer | {"page": page}
    for secret in (
        "PT-Иван-0042",
        ADVICE["assessment"],
        "Paracetamol",
        case["complaint"],
        ADVICE["investigations"],
    ):
        assert str(secret) not in str(shown)
    assert answer["specialist"]["registration_number"] == "REG-ORTHO1"
    missing = hub.client.get("/verify/" + "A" * 32, headers={"Accept": "application/json"})
    assert missing.status_code == 404
    assert hub.client.get("/verify/" + "A" * 32).status_code == 404


@pytest.mark.parametrize("who", ["clinic4", "admin", "radio1"])
def test_pdf_and_fhir_are_for_readers_of_the_case_only(hub: HubHarness, who: str) -> None:
    case, _ = _advised(hub)
    headers = hub.login(who)  # another clinic's doctor, the admin, another specialty
    assert _pdf(hub, case["id"], 1, headers).status_code in (403, 404)
    assert hub.client.get(f"/api/v1/cases/{case['id']}/fhir", headers=headers).status_code in (
        403,
        404,
    )
    assert hub.client.get(f"/api/v1/cases/{case['id']}/fhir").status_code == 401
    assert hub.client.get(f"/api/v1/cases/{case['id']}/advice/1.pdf").status_code == 401


def test_a_missing_advice_version_is_404_and_reads_are_audited(hub: HubHarness) -> None:
    case, _ = _advised(hub)
    clinic = hub.login("clinic1")
    assert _pdf(hub, case["id"], 7, clinic).status_code == 404
    assert _pdf(hub, case["id"], 1, hub.login("sup1")).status_code == 200
    from hub.persistence.models import AuditEntry

    db = hub.app.extensions["teleconsult"].db
    with db.session() as session:
        reads = [
            e.detail
            for e in session.query(AuditEntry).filter_by(action="read", object_type="advice")
        ]
    assert {"version": 1, "document": "pdf"} in reads


def test_the_fhir_bundle_validates_as_r4_and_holds_the_consult(hub: HubHarness) -> None:
    bundle_model = pytest.importorskip("fhir.resources.R4B.bundle").Bundle
    case, _ = _advised(hub)
    clinic = hub.login("clinic1")
    hub.client.post(
        f"/api/v1/cases/{case['id']}/messages", json={"text": "Thanks!"}, headers=clinic
    )
    referred = hub.client.post(
        f"/api/v1/cases/{case['id']}/refer",
        json={"reason": "Displaced on review: needs fixation.", "instructions": "Splint; NPO."},
        headers=hub.login("ortho1"),
    )
    assert referred.status_code == 200, referred.json
    series = make_ct_series(2, accession_number=case["accession_number"])
    parts = []
    for ds in series:
        out = io.BytesIO()
        dcmwrite(out, ds, enforce_file_format=True)
        parts.append(out.getvalue())
    body, content_type = build_related(parts)
    stored = hub.client.post(
        "/dicomweb/studies", data=body, headers={**hub.spoke(), "Content-Type": content_type}
    )
    assert stored.status_code == 200
    r = hub.client.get(f"/api/v1/cases/{case['id']}/fhir", headers=clinic)
    assert r.status_code == 200 and r.mimetype == "application/fhir+json"
    bundle = bundle_model.model_validate(r.json)
    assert bundle.type == "collection"
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    for kind in ("Patient", "ServiceRequest", "Task", "Communication", "ClinicalImpression"):
        assert kind in kinds
    assert kinds.count("MedicationRequest") == 3
    by_kind = {e.resource.get_resource_type(): e.resource for e in bundle.entry}
    assert by_kind["Task"].status == "completed"  # referred after the advice
    assert by_kind["Task"].businessStatus.text == "referred"
    assert by_kind["Patient"].identifier[0].value == "PT-Иван-0042"
    assert by_kind["ServiceRequest"].priority == "urgent"
    refs = {e.fullUrl for e in bundle.entry}
    assert by_kind["Task"].focus.reference in refs
    study = by_kind["ImagingStudy"]
    assert study.identifier[0].value == f"urn:oid:{series[0].StudyInstanceUID}"
    assert study.numberOfInstances == 2 and study.series[0].modality.code == "CT"
    endpoint = by_kind["Endpoint"]
    assert study.endpoint[0].reference == f"urn:uuid:{endpoint.id}"
    assert endpoint.connectionType.code == "dicom-wado-rs"
    assert endpoint.address == "http://localhost/dicomweb"
    # The endpoint answers WADO-RS for the study (the hub's own DICOMweb).
    wado = hub.client.get(f"/dicomweb/studies/{series[0].StudyInstanceUID}/series", headers=clinic)
    assert wado.status_code == 200
    texts = [
        e.resource.payload[0].contentString
        for e in bundle.entry
        if e.resource.get_resource_type() == "Communication"
    ]
    assert texts[0] == "Thanks!"
    assert texts[1].startswith("Displaced on review: needs fixation.")


def test_the_hub_case_page_links_each_version_to_its_pdf_and_the_link_works(
    hub: HubHarness,
) -> None:
    case, _ = _advised(hub)
    sign_in(hub, "ortho1")
    page = hub.client.get(f"/cases/{case['id']}").get_data(as_text=True)
    link = f"/api/v1/cases/{case['id']}/advice/1.pdf"
    assert f'href="{link}"' in page
    pdf = hub.client.get(link)  # the page session is enough (a GET: no CSRF token)
    assert pdf.status_code == 200 and _text(pdf.data)[0] == 1


def test_advice_issued_before_the_migration_gets_its_own_random_code(hub: HubHarness) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from teleconsult.migrations import alembic_config, upgrade

    for _ in range(2):
        _advised(hub)
    db = hub.app.extensions["teleconsult"].db
    url = db.engine.url.render_as_string(hide_password=False)
    db.dispose()
    command.downgrade(alembic_config("hub", url), "0003")  # as a hub of before the feature
    upgrade("hub", url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            codes = connection.execute(text("SELECT verification_code FROM advice")).scalars().all()
    finally:
        engine.dispose()
    assert len(codes) == 2 and len(set(codes)) == 2
    assert all(code and len(code) == 32 for code in codes)  # 24 random bytes, base64url


def test_the_openapi_document_names_the_documents_media_types(hub: HubHarness) -> None:
    paths = hub.client.get("/api/v1/openapi.json").json["paths"]
    pdf = paths["/api/v1/cases/{case_id}/advice/{version}.pdf"]["get"]["responses"]["200"]
    assert "application/pdf" in pdf["content"]
    fhir = paths["/api/v1/cases/{case_id}/fhir"]["get"]["responses"]["200"]
    assert "application/fhir+json" in fhir["content"]


def test_the_pdf_labels_are_in_the_readers_language(hub: HubHarness) -> None:
    case, _ = _advised(hub)
    r = hub.client.get(
        f"/api/v1/cases/{case['id']}/advice/1.pdf",
        headers={**hub.login("clinic1"), "Accept-Language": "ru"},
    )
    pages, text = _text(r.data)
    assert pages == 1
    for russian in ("Версия", "Отсканируйте для проверки", "мужской"):
        assert russian in text, (russian, text)
    assert "Paracetamol" in text and str(ADVICE["assessment"]) in text  # the advice as written
