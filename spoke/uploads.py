"""Files a clinic doctor uploads on a case page: DICOM files, photos (JPEG/PNG) and PDF reports.

Offline first. The page checks each file by its content (not its name), turns photos into DICOM
Secondary Capture and PDFs into DICOM Encapsulated PDF (pydicom; PatientID = the case's patient
pseudonym, AccessionNumber = the case's accession number, a new study per upload batch), takes
DICOM files as they are, and writes each instance durably (temporary file, fsync, rename) into
``<data_dir>/uploads/<case uid>/`` with a small JSON record beside it. ``UploadWorker`` sends the
waiting instances to the hub's STOW-RS (``X-Case-UID``) once the case itself is at the hub,
retrying with backoff; the hub's confirmation removes the file, a refusal moves it aside into
``refused/`` and keeps the reason for the page.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import requests
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from werkzeug.datastructures import FileStorage

from shared.errors import TeleconsultError
from shared.multipart import build_related
from spoke.context import spoke
from spoke.pages import VITALS, signed_in
from spoke.progress import with_images
from spoke.store import CaseStore
from spoke.worker import Worker
from teleconsult.files import fsync_dir, write_durably

log = logging.getLogger(__name__)

bp = Blueprint("uploads", __name__)

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PHOTO_PIXELS = 60_000_000  # about 180 MB once uncompressed: larger photos are refused
MAX_FILES = 20
MAX_REQUEST_BYTES = MAX_FILES * MAX_FILE_BYTES + 1024 * 1024

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
KINDS = {"dicom": "DICOM", "photo": "photo", "pdf": "PDF report"}

WAITING, AT_HUB, REFUSED = "waiting", "at_hub", "refused"
# The hub refused the instance itself: sending it again cannot help.
PERMANENT = frozenset({400, 404, 409, 413, 415, 422})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()-]+")


class UploadRefused(TeleconsultError):
    """A file the spoke does not accept (its type, its size, its content)."""


# -- turning one uploaded file into one DICOM instance ------------------------------------------


@dataclass
class Instance:
    sop_uid: str
    sop_class: str
    kind: str
    name: str
    data: bytes


@dataclass
class Batch:
    """What one upload shares: the case's patient and accession number, a new study."""

    case: dict[str, Any]
    study_uid: str
    now: datetime
    photo_series: str
    document_series: str
    number: int = 0


def new_batch(case: dict[str, Any], now: datetime) -> Batch:
    return Batch(case, generate_uid(), now, generate_uid(), generate_uid())


def sniff(head: bytes) -> str | None:
    """The kind of a file by its first bytes: dicom, photo, pdf or None."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "photo"
    if head.lstrip(b"\xef\xbb\xbf\r\n\t ")[:5] == b"%PDF-":
        return "pdf"
    return None


def convert(name: str, data: bytes, batch: Batch) -> Instance:
    """One uploaded file as a DICOM instance; ``UploadRefused`` says in words why not."""
    if not data:
        raise UploadRefused(f"{name}: the file is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise UploadRefused(
            f"{name}: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB."
        )
    kind = sniff(data[:1024])
    if kind is None:
        raise UploadRefused(
            f"{name}: not a DICOM file, JPEG or PNG photo, or PDF report "
            "(the content was checked, not only the name)."
        )
    batch.number += 1
    if kind == "dicom":
        return _dicom(name, data)
    if kind == "photo":
        return _photo(name, data, batch)
    return _pdf(name, data, batch)


def _dicom(name: str, data: bytes) -> Instance:
    try:
        ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # InvalidDicomError, and pydicom raises many types on damaged input
        raise UploadRefused(
            f"{name}: not a readable DICOM file ({exc.__class__.__name__})."
        ) from None
    sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    if not sop_uid:
        raise UploadRefused(f"{name}: the DICOM file has no SOPInstanceUID.")
    for keyword in ("SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not str(ds.get(keyword, "") or ""):
            raise UploadRefused(f"{name}: the DICOM file has no {keyword}.")
    return Instance(sop_uid, str(ds.SOPClassUID), "dicom", name, data)


def _photo(name: str, data: bytes, batch: Batch) -> Instance:
    try:
        with Image.open(BytesIO(data)) as probe:
            probe.verify()
        with Image.open(BytesIO(data)) as opened:
            if opened.format not in ("JPEG", "PNG"):
                raise UploadRefused(f"{name}: only JPEG and PNG photos are taken.")
            if opened.width * opened.height > MAX_PHOTO_PIXELS:
                raise UploadRefused(
                    f"{name}: the photo has more than {MAX_PHOTO_PIXELS // 1_000_000} megapixels; "
                    "send a smaller one."
                )
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except UploadRefused:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        raise UploadRefused(
            f"{name}: the photo cannot be read ({exc.__class__.__name__})."
        ) from None
    ds = _base(batch, SECONDARY_CAPTURE, batch.photo_series, "XC")
    ds.ConversionType = "DI"
    ds.ImageComments = f"Uploaded file: {name}"
    ds.SeriesDescription = "Photos from the clinic"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = image.height, image.width
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "01" if data.startswith(b"\xff\xd8") else "00"
    ds.PixelData = image.tobytes()
    return Instance(ds.SOPInstanceUID, SECONDARY_CAPTURE, "photo", name, _encode(ds))


def _pdf(name: str, data: bytes, batch: Batch) -> Instance:
    if b"%%EOF" not in data[-2048:]:
        raise UploadRefused(f"{name}: the PDF is incomplete (no end-of-file marker).")
    ds = _base(batch, ENCAPSULATED_PDF, batch.document_series, "DOC")
    ds.ConversionType = "WSD"
    ds.SeriesDescription = "Reports from the clinic"
    ds.DocumentTitle = name[:64]
    ds.ConceptNameCodeSequence = []
    ds.BurnedInAnnotation = "YES"
    ds.AcquisitionDateTime = batch.now.strftime("%Y%m%d%H%M%S")
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = data + (b"\x00" if len(data) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(data)
    return Instance(ds.SOPInstanceUID, ENCAPSULATED_PDF, "pdf", name, _encode(ds))


def _base(batch: Batch, sop_class: str, series_uid: str, modality: str) -> Dataset:
    case, now = batch.case, batch.now
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    patient = case.get("patient") or {}
    ds.PatientID = str(patient.get("pseudonym") or "")[:64]
    ds.PatientName = str(patient.get("pseudonym") or "")[:64]
    ds.PatientBirthDate = ""
    ds.PatientSex = {"male": "M", "female": "F"}.get(str(patient.get("sex") or ""), "O")
    if isinstance(patient.get("age"), int) and 0 <= patient["age"] < 1000:
        ds.PatientAge = f"{patient['age']:03d}Y"
    ds.AccessionNumber = str(case.get("accession_number") or "")[:16]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = batch.study_uid, series_uid
    ds.StudyID = "1"
    ds.StudyDescription = "Uploaded at the clinic"
    ds.ReferringPhysicianName = ""
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.Modality = modality
    ds.SeriesNumber = 1 if modality == "XC" else 2
    ds.InstanceNumber = batch.number
    ds.Manufacturer = "Teleconsult spoke"
    return ds


def _encode(ds: Dataset) -> bytes:
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


# -- the durable queue on disk -----------------------------------------------------------------


class UploadQueue:
    """``<root>/<case uid>/<sop uid>.dcm`` waits to be sent, ``<sop uid>.json`` says what it is and
    where it stands; refused instances go to ``<root>/<case uid>/refused/``."""

    def __init__(self, root: Path) -> None:
        self.changes = 0
        self.root = Path(root)
        self._lock = threading.Lock()

    def _case_dir(self, case_uid: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", case_uid) or case_uid.startswith("."):
            raise ValueError("not a case uid")
        return self.root / case_uid

    def add(self, case_uid: str, instance: Instance, now: datetime) -> None:
        folder = self._case_dir(case_uid)
        write_durably(folder / f"{instance.sop_uid}.dcm", instance.data)
        record = {
            "sop_uid": instance.sop_uid,
            "sop_class": instance.sop_class,
            "kind": instance.kind,
            "name": instance.name,
            "state": WAITING,
            "reason": None,
            "attempts": 0,
            "added_at": now.isoformat(),
            "done_at": None,
        }
        self._save(folder, record)

    def records(self, case_uid: str) -> list[dict[str, Any]]:
        """What was uploaded for a case, oldest first."""
        try:
            folder = self._case_dir(case_uid)
        except ValueError:
            return []
        found = []
        for path in folder.glob("*.json") if folder.is_dir() else ():
            try:
                found.append(json.loads(path.read_text("utf-8")))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda r: (str(r.get("added_at")), str(r.get("name"))))

    def waiting(self) -> dict[str, list[dict[str, Any]]]:
        """Waiting records per case uid."""
        result: dict[str, list[dict[str, Any]]] = {}
        if not self.root.is_dir():
            return result
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if not any(folder.glob("*.dcm")):
                continue  # everything of this case was confirmed or refused: no need to read it
            items = [r for r in self.records(folder.name) if r.get("state") == WAITING]
            if items:
                result[folder.name] = items
        return result

    def data(self, case_uid: str, record: dict[str, Any]) -> bytes:
        return (self._case_dir(case_uid) / f"{record['sop_uid']}.dcm").read_bytes()

    def confirmed(self, case_uid: str, record: dict[str, Any], now: datetime) -> None:
        folder = self._case_dir(case_uid)
        self._save(folder, {**record, "state": AT_HUB, "reason": None, "done_at": now.isoformat()})
        (folder / f"{record['sop_uid']}.dcm").unlink(missing_ok=True)
        fsync_dir(folder)

    def refused(self, case_uid: str, record: dict[str, Any], reason: str, now: datetime) -> None:
        folder = self._case_dir(case_uid)
        aside = folder / "refused"
        aside.mkdir(exist_ok=True)
        source = folder / f"{record['sop_uid']}.dcm"
        if source.exists():
            os.replace(source, aside / source.name)
            fsync_dir(aside)
        self._save(
            folder, {**record, "state": REFUSED, "reason": reason, "done_at": now.isoformat()}
        )

    def failed_attempt(self, case_uid: str, record: dict[str, Any], reason: str) -> None:
        record.update(attempts=int(record.get("attempts") or 0) + 1, last_error=reason)
        self._save(self._case_dir(case_uid), record)

    def _save(self, folder: Path, record: dict[str, Any]) -> None:
        with self._lock:
            write_durably(folder / f"{record['sop_uid']}.json", json.dumps(record).encode())
            self.changes += 1  # the pages redraw when this moves


# -- the worker that sends them ----------------------------------------------------------------


class HubDown(Exception):
    """The hub could not be reached or failed: try again later."""


class UploadWorker(Worker):
    """Sends waiting uploads to the hub's STOW-RS; ``wake()`` after an upload."""

    name = "spoke-uploads"

    def __init__(
        self,
        queue: UploadQueue,
        store: CaseStore,
        hub_url: str,
        spoke_token: str,
        timeout_s: float,
        interval_s: float,
        max_backoff_s: float = 60.0,
    ) -> None:
        super().__init__(interval_s, max_backoff_s)
        self.queue = queue
        self.store = store
        self.url = hub_url.rstrip("/") + "/dicomweb/studies"
        self.spoke_token = spoke_token
        self.timeout_s = max(float(timeout_s), 30.0)  # an instance may be tens of MB

    def cycle(self) -> bool:
        return self.send_once()

    def send_once(self) -> bool:
        """One pass over the waiting uploads of cases that are at the hub; False to back off."""
        now = self.store.clock.now
        for case_uid, records in self.queue.waiting().items():
            try:
                case = self.store.get_case(case_uid)
            except TeleconsultError:
                for record in records:
                    self.queue.refused(
                        case_uid, record, "The case is not known at this clinic.", now()
                    )
                continue
            if case.get("sync_state") == "rejected":
                for record in records:
                    self.queue.refused(case_uid, record, "The hub refused the case itself.", now())
                continue
            if not case.get("hub_id"):
                continue  # sent with the case's images once the case is at the hub
            for record in records:
                if self._stop.is_set():
                    return True
                try:
                    self._send(case_uid, record)
                except HubDown as exc:
                    self.queue.failed_attempt(case_uid, record, str(exc))
                    log.warning(
                        "upload %s of case %s not sent: %s", record["sop_uid"], case_uid, exc
                    )
                    return False
        return True

    def _send(self, case_uid: str, record: dict[str, Any]) -> None:
        now = self.store.clock.now
        try:
            data = self.queue.data(case_uid, record)
        except OSError:
            self.queue.refused(
                case_uid, record, "The file was lost at the clinic before it was sent.", now()
            )
            return
        body, content_type = build_related([data])
        headers = {
            "Authorization": f"Bearer {self.spoke_token}",
            "Content-Type": content_type,
            "Accept": "application/dicom+json",
            "X-Case-UID": case_uid,
        }
        try:
            answer = requests.post(self.url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise HubDown(f"{exc.__class__.__name__}: {exc}") from None
        if answer.status_code >= 500:
            raise HubDown(f"the hub answered {answer.status_code}")
        referenced, failed = _stow_result(answer)
        if answer.status_code in (200, 202) and record["sop_uid"] in referenced:
            self.queue.confirmed(case_uid, record, now())
            log.info("upload %s of case %s is at the hub", record["sop_uid"], case_uid)
        elif answer.status_code in (200, 202, 409) or answer.status_code in PERMANENT:
            reason = (
                failed or _error_message(answer) or f"The hub refused it ({answer.status_code})."
            )
            self.queue.refused(case_uid, record, reason, now())
            log.warning(
                "upload %s of case %s refused by the hub: %s", record["sop_uid"], case_uid, reason
            )
        else:  # 401/403 (this spoke's credentials), 429...: an operator or time must fix it
            raise HubDown(f"the hub answered {answer.status_code}: {_error_message(answer)}")


def _stow_result(answer: requests.Response) -> tuple[set[str], str]:
    """The SOP instance UIDs the hub stored and its reasons for what it did not, in words."""
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    referenced = {
        str(v)
        for item in (body.get("00081199") or {}).get("Value", []) or []
        for v in (item.get("00081155") or {}).get("Value", []) or []
    }
    warnings = answer.raw.headers.getlist("Warning") if answer.raw is not None else []
    texts = [m.group(1) for w in warnings if (m := re.search(r'"(.*)"', w))]
    return referenced, "; ".join(texts)


def _error_message(answer: requests.Response) -> str:
    try:
        error = answer.json().get("error") or {}
        return str(error.get("message") or "")
    except (ValueError, AttributeError):
        return ""


# -- the page -----------------------------------------------------------------------------------


def _allow_big_uploads(state: BlueprintSetupState) -> None:
    """The app caps request bodies at 1 MB; the upload form alone may send more. This must run
    before the CSRF check, which reads the form."""

    def raise_limit() -> None:
        if request.endpoint == "uploads.upload":
            request.max_content_length = MAX_REQUEST_BYTES

    state.app.before_request_funcs.setdefault(None, []).insert(0, raise_limit)


bp.record_once(_allow_big_uploads)


def worker() -> UploadWorker:
    found = spoke().uploads
    if not isinstance(found, UploadWorker):
        raise RuntimeError("the spoke has no upload worker")
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
    """Check and convert every file first: one bad file refuses the whole batch, nothing is
    queued."""
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
    now = spoke().clock.now()
    batch = new_batch(case, now)
    try:
        instances = [convert(_display_name(f), _read(f), batch) for f in files]
    except UploadRefused as exc:
        return _refused_page(uid, f"Nothing was uploaded. {exc.message}")
    uploads = worker()
    for instance in instances:
        uploads.queue.add(uid, instance, now)
    uploads.wake()
    n = len(instances)
    where = "sent to the hub" if case.get("hub_id") else "sent to the hub once the case is there"
    flash(
        f"{n} file{'' if n == 1 else 's'} kept at the clinic; {'it' if n == 1 else 'they'} will "
        f"be {where}."
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


def build_worker(
    data_dir: str | Path,
    store: CaseStore,
    hub_url: str,
    spoke_token: str,
    timeout_s: float,
    interval_s: float,
) -> UploadWorker:
    return UploadWorker(
        UploadQueue(Path(data_dir) / "uploads"), store, hub_url, spoke_token, timeout_s, interval_s
    )
