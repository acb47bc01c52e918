"""The upload form of the case page: parse the files, call the upload service, answer."""

from __future__ import annotations

import os
import re
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import FileStorage

from shared.errors import TeleconsultError
from spoke.context import spoke
from spoke.pages import VITALS, signed_in
from spoke.progress import with_images
from spoke.uploads.convert import KINDS, MAX_FILE_BYTES, MAX_FILES, UploadRefused
from spoke.uploads.service import UploadService

bp = Blueprint("uploads", __name__)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()-]+")


def service() -> UploadService:
    found = spoke().upload_service
    if found is None:
        raise RuntimeError("the spoke has no upload service")
    return found


@bp.app_context_processor
def _upload_helpers() -> dict[str, Any]:
    def uploads_of(case_uid: str) -> list[dict[str, Any]]:
        uploads = spoke().uploads
        return uploads.queue.records(case_uid) if uploads is not None else []

    return {
        "uploads_of": uploads_of,
        "upload_kinds": KINDS,
        "upload_max_mb": MAX_FILE_BYTES // (1024 * 1024),
    }


@bp.post("/cases/<uid>/uploads")
@signed_in
def upload(uid: str) -> ResponseReturnValue:
    """Check and convert every file first: one bad file refuses the batch, nothing is queued."""
    try:
        case = spoke().store.get_case(uid)
    except TeleconsultError:
        abort(404)
    files = [f for f in request.files.getlist("files") if f and f.filename]
    if not files:
        flash("Choose one or more files to upload first.")
        return redirect(url_for("pages.case_page", uid=uid))
    if len(files) > MAX_FILES:
        return _refused_page(
            uid, f"Nothing was uploaded: choose at most {MAX_FILES} files at a time."
        )
    try:
        named = [(_display_name(f), _read(f)) for f in files]
        instances = service().accept(case, named, spoke().clock.now())
    except UploadRefused as exc:
        return _refused_page(uid, f"Nothing was uploaded. {exc.message}")
    n = len(instances)
    where = "sent to the hub" if case.get("hub_id") else "sent to the hub once the case is there"
    flash(
        f"{n} file{'' if n == 1 else 's'} kept at the clinic; "
        f"{'it' if n == 1 else 'they'} will be {where}."
    )
    return redirect(url_for("pages.case_page", uid=uid))


def _refused_page(uid: str, message: str) -> ResponseReturnValue:
    """The case page again, the reason above the form (400: nothing was queued)."""
    case = with_images([spoke().store.get_case(uid)])[0]
    return render_template("case.html", case=case, vitals=VITALS, upload_error=message), 400


def _read(file: FileStorage) -> bytes:
    data = file.stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise UploadRefused(
            f"{_display_name(file)}: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB."
        )
    return data


def _display_name(file: FileStorage) -> str:
    name = os.path.basename((file.filename or "file").replace("\\", "/"))
    return _SAFE_NAME.sub("_", name)[:120] or "file"
