"""DICOMweb of the hub under /dicomweb: STOW-RS and WADO-RS (DESIGN.md, "DICOMweb")."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.http import parse_options_header

from hub.context import current_principal, db_session, hub, remote_addr
from hub.services.images import ImageService, StowResult
from shared.errors import InvalidInput, UnsupportedMediaType
from shared.multipart import MultipartError, build_related, parse_related

bp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb")

_DICOM = "application/dicom"


def _images() -> ImageService:
    h = hub()
    return ImageService(db_session(), h.clock, h.image_dir, remote_addr())


def _dicom_parts() -> list[bytes]:
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/related" or options.get("type", _DICOM).lower() != _DICOM:
        raise UnsupportedMediaType(
            'Send DICOM as Content-Type: multipart/related; type="application/dicom".'
        )
    try:
        parts = parse_related(request.get_data(cache=False), options.get("boundary", ""))
    except MultipartError as exc:
        raise InvalidInput(str(exc)) from None
    if not parts:
        raise InvalidInput("The request holds no DICOM instance.")
    for headers, _ in parts:
        part_type = parse_options_header(headers.get("content-type", _DICOM))[0]
        if part_type != _DICOM:
            raise UnsupportedMediaType(f"Every part must be application/dicom, not {part_type!r}.")
    return [body for _, body in parts]


@bp.post("/studies")
def stow() -> ResponseReturnValue:
    principal = current_principal()
    parts = _dicom_parts()
    result = _images().store(principal, parts, request.headers.get("X-Case-UID") or None)
    status = 200 if not result.failed else (202 if result.referenced else 409)
    response = jsonify(_stow_response(result))
    response.content_type = "application/dicom+json"
    for failed in result.failed:  # the reasons in words, as PS3.18 Warning headers
        text = " ".join(str(failed["message"]).split()).replace('"', "'")
        response.headers.add("Warning", f'299 teleconsult "{text.encode("ascii", "replace").decode()}"')
    return response, status


def _stow_response(result: StowResult) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if result.referenced:
        body["00081199"] = {"vr": "SQ", "Value": [_sop_ref(r["sop_class"], r["sop_uid"]) for r in result.referenced]}
    if result.failed:
        body["00081198"] = {
            "vr": "SQ",
            "Value": [
                {**_sop_ref(f["sop_class"], f["sop_uid"]), "00081197": {"vr": "US", "Value": [f["reason"]]}}
                for f in result.failed
            ],
        }
    return body


def _sop_ref(sop_class: str, sop_uid: str) -> dict[str, Any]:
    ref: dict[str, Any] = {}
    if sop_class:
        ref["00081150"] = {"vr": "UI", "Value": [sop_class]}
    if sop_uid:
        ref["00081155"] = {"vr": "UI", "Value": [sop_uid]}
    return ref


@bp.get("/studies/<study>/series/<series>/instances/<instance>")
def retrieve_instance(study: str, series: str, instance: str) -> ResponseReturnValue:
    path = _images().instance_file(current_principal(), study, series, instance)
    body, content_type = build_related([path.read_bytes()], _DICOM)
    return Response(body, content_type=content_type)
