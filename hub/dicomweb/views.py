"""DICOMweb of the hub under /dicomweb (DESIGN.md, "DICOMweb"): STOW-RS, QIDO-RS, WADO-RS with
metadata, frames and rendered previews. Thin: parse, call one service, answer; every call is
authenticated and scoped like the REST API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header

from hub.context import current_principal, db_session, hub, remote_addr
from hub.services.image_query import (
    INSTANCE_KEYS,
    SERIES_KEYS,
    STUDY_KEYS,
    ImageReader,
    parse_query,
)
from hub.services.images import ImageService, StowResult
from hub.services.rendering import (
    ImageTooLarge,
    RenderError,
    decoded_frame,
    encapsulated_document,
    parse_window,
    render,
    run_cpu,
    stored_frame,
)
from shared.errors import InvalidInput, NotFound, TooLarge, UnsupportedMediaType
from shared.multipart import MultipartError, RelatedBody, build_related, iter_related
from shared.sop_classes import DOCUMENT_CLASSES
from shared.stow import stow_response, stow_status

bp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb")

_DICOM = "application/dicom"


def _images() -> ImageService:
    h = hub()
    return ImageService(db_session(), h.clock, h.image_dir, remote_addr())


def _stow_boundary() -> str:
    """The boundary of a STOW-RS request's multipart/related body of application/dicom parts."""
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/related" or options.get("type", _DICOM).lower() != _DICOM:
        raise UnsupportedMediaType(
            'Send DICOM as Content-Type: multipart/related; type="application/dicom".'
        )
    length, limit = request.content_length, request.max_content_length
    if length is not None and limit is not None and length > limit:
        raise RequestEntityTooLarge()
    return str(options.get("boundary", ""))


def _dicom_parts(boundary: str) -> Iterator[Iterator[bytes]]:
    """Each part's content as it arrives from the network, a chunk at a time."""
    for part in iter_related(request.stream, boundary):
        part_type = parse_options_header(part.headers.get("content-type", _DICOM))[0]
        if part_type != _DICOM:
            raise UnsupportedMediaType(f"Every part must be application/dicom, not {part_type!r}.")
        yield part.chunks()


@bp.post("/studies")
def stow() -> ResponseReturnValue:
    principal = current_principal()  # who is calling, before a byte of the body is read
    # End the authentication's transaction: on SQLite it would hold the write lock while the
    # body arrives, and every other request of the hub would wait for the network.
    db_session().commit()
    boundary = _stow_boundary()
    try:
        result = _images().store(
            principal, _dicom_parts(boundary), request.headers.get("X-Case-UID") or None
        )
    except MultipartError as exc:
        raise InvalidInput(str(exc)) from None
    answer = _stow_response(result)
    response = jsonify(answer)
    response.content_type = "application/dicom+json"
    for failed in result.failed:  # the reasons in words, as PS3.18 Warning headers
        text = " ".join(str(failed["message"]).split()).replace('"', "'")
        response.headers.add(
            "Warning", f'299 teleconsult "{text.encode("ascii", "replace").decode()}"'
        )
    return response, stow_status(answer)


def _stow_response(result: StowResult) -> dict[str, Any]:
    return stow_response(
        ((r["sop_class"], r["sop_uid"]) for r in result.referenced),
        ((f["sop_class"], f["sop_uid"], f["reason"]) for f in result.failed),
    )


# -- QIDO-RS -------------------------------------------------------------------------------------

_DICOM_JSON = "application/dicom+json"


def _reader() -> ImageReader:
    h = hub()
    base = (str(h.settings.public_url or "").rstrip("/") or request.host_url.rstrip("/")) + (
        bp.url_prefix or ""
    )
    return ImageReader(db_session(), h.clock, h.image_dir, base, remote_addr())


def _dicom_json(items: Any) -> ResponseReturnValue:
    response = jsonify(items)
    response.content_type = _DICOM_JSON
    return response


@bp.get("/studies")
def search_studies() -> ResponseReturnValue:
    query = parse_query(request.args, STUDY_KEYS)
    return _dicom_json(_reader().search_studies(current_principal(), query))


@bp.get("/studies/<study>/series")
def search_series(study: str) -> ResponseReturnValue:
    query = parse_query(request.args, SERIES_KEYS)
    return _dicom_json(_reader().search_series(current_principal(), study, query))


@bp.get("/studies/<study>/instances")
@bp.get("/studies/<study>/series/<series>/instances")
def search_instances(study: str, series: str | None = None) -> ResponseReturnValue:
    query = parse_query(request.args, INSTANCE_KEYS)
    return _dicom_json(_reader().search_instances(current_principal(), study, series, query))


# -- WADO-RS -------------------------------------------------------------------------------------


@bp.get("/studies/<study>")
@bp.get("/studies/<study>/series/<series>")
@bp.get("/studies/<study>/series/<series>/instances/<instance>")
def retrieve(
    study: str, series: str | None = None, instance: str | None = None
) -> ResponseReturnValue:
    reader = _reader()
    found = reader.instances(current_principal(), study, series, instance)
    body = RelatedBody([reader.path_of(i) for i in found], _DICOM)  # files read a chunk at a time
    return Response(
        iter(body), content_type=body.content_type, headers={"Content-Length": str(len(body))}
    )


@bp.get("/studies/<study>/metadata")
@bp.get("/studies/<study>/series/<series>/metadata")
@bp.get("/studies/<study>/series/<series>/instances/<instance>/metadata")
def retrieve_metadata(
    study: str, series: str | None = None, instance: str | None = None
) -> ResponseReturnValue:
    return _dicom_json(_reader().metadata(current_principal(), study, series, instance))


@bp.get("/studies/<study>/series/<series>/instances/<instance>/frames/<frames>")
def retrieve_frames(study: str, series: str, instance: str, frames: str) -> ResponseReturnValue:
    numbers = _frame_numbers(frames)
    path = _instance_path(study, series, instance)
    decode = _wants_uncompressed(request.headers.get("Accept", ""))
    try:
        parts = [_frame(path, n, decode) for n in numbers]
    except ImageTooLarge as exc:
        raise TooLarge(str(exc)) from None
    except RenderError as exc:
        raise NotFound(str(exc)) from None
    media_type = parts[0][1]
    body, content_type = build_related((data for data, _ in parts), media_type)
    return Response(body, content_type=content_type)


def _frame(path: Any, number: int, decode: bool) -> tuple[bytes, str]:
    limit = _max_pixels()
    if decode:
        return run_cpu(decoded_frame, path, number, limit), "application/octet-stream"
    data, media_type = run_cpu(stored_frame, path, number, limit)
    return data, media_type


def _max_pixels() -> int:
    return int(hub().settings.max_render_pixels)


@bp.get("/studies/<study>/series/<series>/instances/<instance>/rendered")
@bp.get("/studies/<study>/series/<series>/instances/<instance>/frames/<frames>/rendered")
def retrieve_rendered(
    study: str, series: str, instance: str, frames: str = "1"
) -> ResponseReturnValue:
    frame = _frame_numbers(frames)[0]
    found = _instance(study, series, instance)
    if found.sop_class_uid in DOCUMENT_CLASSES:
        return _document(found)
    media_type = _rendered_type()
    try:
        window = parse_window(request.args.get("window") or request.args.get("preset"))
        quality = int(request.args.get("quality", 90))
    except (RenderError, ValueError) as exc:
        raise InvalidInput(str(exc), fields={"window": [request.args.get("window", "")]}) from None
    path = _reader().path_of(found)
    try:
        image = run_cpu(
            render, path, frame, window, media_type, max(1, min(100, quality)), _max_pixels()
        )
    except ImageTooLarge as exc:
        raise TooLarge(str(exc)) from None
    except RenderError as exc:
        raise NotFound(str(exc)) from None
    return Response(image, content_type=media_type)


def _instance(study: str, series: str, instance: str) -> Any:
    (found,) = _reader().instances(current_principal(), study, series, instance)
    return found


def _instance_path(study: str, series: str, instance: str) -> Any:
    reader = _reader()
    (found,) = reader.instances(current_principal(), study, series, instance)
    return reader.path_of(found)


def _document(found: Any) -> ResponseReturnValue:
    """The rendered form of an encapsulated document is the document itself (PS3.18 8.3.5.1):
    a PDF report opens in the browser, or is saved with ``download=1``."""
    try:
        data, media_type = run_cpu(encapsulated_document, _reader().path_of(found))
    except RenderError as exc:
        raise NotFound(str(exc)) from None
    wanted = (request.args.get("accept") or request.headers.get("Accept", "")).lower()
    if (
        wanted
        and media_type not in wanted
        and "*/*" not in wanted
        and "application/*" not in wanted
    ):
        raise UnsupportedMediaType(f"This instance is a document: ask for {media_type}.")
    disposition = "attachment" if request.args.get("download") else "inline"
    extension = ".pdf" if media_type == "application/pdf" else ""
    response = Response(data, content_type=media_type)
    # The name comes from the instance's UID (a DICOM UID: digits and dots), never from the client.
    response.headers["Content-Disposition"] = (
        f'{disposition}; filename="report-{found.sop_uid}{extension}"'
    )
    return response


def _frame_numbers(text: str) -> list[int]:
    try:
        numbers = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1:
        raise InvalidInput("Frame numbers are 1-based whole numbers, separated by commas.")
    return numbers


def _wants_uncompressed(accept: str) -> bool:
    """True when the client accepts only raw pixels (application/octet-stream, no other syntax)."""
    accept = accept.lower()
    if "application/octet-stream" not in accept or "transfer-syntax=*" in accept or "*/*" in accept:
        return False
    return not any(t in accept for t in ("image/", "video/"))


def _rendered_type() -> str:
    wanted = (request.args.get("accept") or request.headers.get("Accept", "")).lower()
    if "image/jpeg" in wanted:
        return "image/jpeg"
    if not wanted or "image/png" in wanted or "*/*" in wanted or "image/*" in wanted:
        return "image/png"
    raise UnsupportedMediaType("Rendered images are image/png or image/jpeg.")


# -- attaching a study by hand ---------------------------------------------------------------------


@bp.put("/studies/<study>/case")
def attach_study(study: str) -> ResponseReturnValue:
    """Teleconsult extension: link a study that matched no case to one (the spoke's inbox)."""
    body = request.get_json(silent=True) or {}
    case_uid = str(body.get("case_uid") or "").strip()
    if not case_uid:
        raise InvalidInput('Name the case: {"case_uid": ...}.', fields={"case_uid": ["required"]})
    result = _images().attach_study(current_principal(), study, case_uid)
    return jsonify(result)
