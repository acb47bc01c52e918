"""The documents of a case under /api/v1 (DESIGN.md, "Documents and exchange"): the
e-prescription PDF of an advice version and the case as a FHIR R4 Bundle. Thin: the services
decide who may read them (the case's advice readers) and audit the read."""

from __future__ import annotations

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from hub.api.openapi import documented
from hub.api.views import bp
from hub.context import current_principal, db_session, hub, remote_addr
from hub.services.documents import DocumentService, Letterhead
from hub.services.fhir import FhirExport
from teleconsult.localtime import zone


def public_url() -> str:
    """The hub's address as a pharmacist or a hospital reaches it (config ``public_url``; else
    the address this request came to)."""
    return hub().settings.public_url or request.url_root


def letterhead() -> Letterhead:
    settings = hub().settings
    return Letterhead(settings.hub_name, public_url(), zone(settings.timezone), gettext)


@bp.get("/cases/<int:case_id>/advice/<int:version>.pdf")
@documented(
    "The e-prescription of one advice version as a one-page A4 PDF (application/pdf), with a QR "
    "code of its public verification URL",
    roles="readers of the case's advice",
    errors=(401, 404),
    media="application/pdf",
)
def advice_pdf(case_id: int, version: int) -> ResponseReturnValue:
    service = DocumentService(db_session(), hub().clock, remote_addr())
    pdf = service.prescription_pdf(current_principal(), case_id, version, letterhead())
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'inline; filename="e-prescription-{case_id}-v{version}.pdf"'
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/cases/<int:case_id>/fhir")
@documented(
    "The case as a FHIR R4 Bundle (collection): Patient, ServiceRequest, Task, Communication, "
    "ImagingStudy with its WADO-RS Endpoint, MedicationRequest, ClinicalImpression",
    roles="readers of the case",
    errors=(401, 404),
    media="application/fhir+json",
)
def case_fhir(case_id: int) -> ResponseReturnValue:
    service = FhirExport(db_session(), hub().clock, remote_addr())
    bundle = service.bundle(current_principal(), case_id, public_url())
    response = jsonify(bundle)
    response.mimetype = "application/fhir+json"
    response.headers["Cache-Control"] = "private, no-store"
    return response
