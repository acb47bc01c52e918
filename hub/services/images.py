"""The hub's image store: each DICOM instance once, as a file on disk plus a row, linked to its case."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.persistence.models import Case, Instance, Series, Study
from hub.services.access import require_read, require_role
from hub.services.audit import audit
from hub.services.auth import Principal
from hub.services.events import record_event
from shared import protocol
from shared.clock import Clock
from shared.enums import Role
from shared.errors import Conflict, NotFound
from teleconsult.files import write_durably

log = logging.getLogger(__name__)

# STOW-RS failure reasons (PS3.18, table "Store Instances Response Failure Reasons").
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_ENCAPSULATED_PREFIX = "1.2.840.10008.1.2.4"  # JPEG family; RLE is 1.2.840.10008.1.2.5


class PartRejected(Exception):
    def __init__(self, reason: int, message: str, sop_class: str = "", sop_uid: str = "") -> None:
        super().__init__(message)
        self.reason, self.message, self.sop_class, self.sop_uid = reason, message, sop_class, sop_uid


@dataclass
class StowResult:
    referenced: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ImageService:
    session: Session
    clock: Clock
    image_dir: Path
    remote_addr: str = ""

    def store(self, principal: Principal, parts: list[bytes], case_uid: str | None) -> StowResult:
        """Store each DICOM part once; a bad part is reported as failed, never stored in half."""
        require_role(principal, Role.SPOKE_DOCTOR, spoke_service=True)
        case = self._case_by_uid(principal, case_uid) if case_uid else None
        result = StowResult()
        touched: dict[int, int] = {}
        for raw in parts:
            try:
                instance, new = self._store_one(principal, raw, case)
            except PartRejected as rejected:
                log.info("STOW part refused: %s", rejected.message)
                result.failed.append(
                    {"sop_class": rejected.sop_class, "sop_uid": rejected.sop_uid,
                     "reason": rejected.reason, "message": rejected.message}
                )
                continue
            result.referenced.append({"sop_class": instance.sop_class_uid, "sop_uid": instance.sop_uid})
            if new:
                study_id = instance.series.study_id
                touched[study_id] = touched.get(study_id, 0) + 1
        for study_id, count in touched.items():
            self._announce(self.session.get_one(Study, study_id), count)
        if touched:
            audit(self.session, self.clock, principal, "store", "instances", sum(touched.values()), self.remote_addr)
        self.session.commit()
        return result

    def _case_by_uid(self, principal: Principal, case_uid: str) -> Case:
        case = self.session.scalar(select(Case).where(Case.uid == case_uid))
        return require_read(principal, case)

    def _store_one(self, principal: Principal, raw: bytes, case: Case | None) -> tuple[Instance, bool]:
        raw = _with_preamble(raw)
        meta = _read_header(raw)
        existing = self.session.scalar(select(Instance).where(Instance.sop_uid == meta["sop_uid"]))
        if existing is not None:
            return existing, False
        study = self._study(principal, meta, case)
        series = self._series(study, meta)
        relative = Path(meta["study_uid"]) / meta["series_uid"] / f"{meta['sop_uid']}.dcm"
        try:
            write_durably(self.image_dir / relative, raw)
        except OSError as exc:
            raise PartRejected(OUT_OF_RESOURCES, f"cannot write the image: {exc.strerror}", meta["sop_class"], meta["sop_uid"]) from None
        instance = Instance(
            sop_uid=meta["sop_uid"], series_id=series.id, sop_class_uid=meta["sop_class"],
            transfer_syntax_uid=meta["transfer_syntax"], number=meta["number"], frames=meta["frames"],
            size=len(raw), sha256=hashlib.sha256(raw).hexdigest(), path=str(relative),
            created_at=self.clock.now(),
        )
        try:
            with self.session.begin_nested():
                self.session.add(instance)
        except IntegrityError:  # stored meanwhile by a concurrent request: same UID, same file
            return self.session.scalars(select(Instance).where(Instance.sop_uid == meta["sop_uid"])).one(), False
        return instance, True

    def _study(self, principal: Principal, meta: dict[str, Any], case: Case | None) -> Study:
        study = self.session.scalar(select(Study).where(Study.study_uid == meta["study_uid"]))
        if study is None:
            study = Study(
                study_uid=meta["study_uid"], spoke_id=principal.spoke_id, patient_id=meta["patient_id"],
                accession_number=meta["accession"], study_date=meta["study_date"],
                description=meta["study_description"], created_at=self.clock.now(),
            )
            self.session.add(study)
        if study.case_id is None:
            linked = case or self._case_by_accession(principal, meta["accession"])
            study.case_id = linked.id if linked else None
        self.session.flush()
        return study

    def _case_by_accession(self, principal: Principal, accession: str) -> Case | None:
        if not accession:
            return None
        return self.session.scalar(
            select(Case).where(Case.accession_number == accession, Case.spoke_id == principal.spoke_id)
        )

    def _series(self, study: Study, meta: dict[str, Any]) -> Series:
        series = self.session.scalar(select(Series).where(Series.series_uid == meta["series_uid"]))
        if series is None:
            series = Series(
                series_uid=meta["series_uid"], study=study, modality=meta["modality"],
                number=meta["series_number"], description=meta["series_description"],
            )
            self.session.add(series)
            self.session.flush()
        return series

    def _announce(self, study: Study, received: int) -> None:
        if study.case_id is None:
            return
        case = self.session.get_one(Case, study.case_id)
        total = sum(len(s.instances) for s in study.series)
        rooms = [protocol.room_for_spoke(case.spoke_id), protocol.DASHBOARD_ROOM]
        if case.assigned_to_id:
            rooms.append(protocol.room_for_user(case.assigned_to_id))
        data = {"case_uid": case.uid, "study_uid": study.study_uid, "received": received, "instances": total}
        record_event(self.session, self.clock, protocol.IMAGE_RECEIVED, case.id, rooms, data)

    def attach_study(self, principal: Principal, study_uid: str, case_uid: str) -> dict[str, Any]:
        """Link a study that matched no case to a case of the same spoke (the spoke's inbox)."""
        require_role(principal, Role.SPOKE_DOCTOR, spoke_service=True)
        study = self.session.scalar(select(Study).where(Study.study_uid == study_uid))
        if study is None or study.spoke_id is None or study.spoke_id != principal.spoke_id:
            raise NotFound("No such study.")
        case = self._case_by_uid(principal, case_uid)
        if study.case_id is not None and study.case_id != case.id:
            raise Conflict("This study is already attached to another case.")
        if study.case_id is None:
            study.case_id = case.id
            self.session.flush()
            self._announce(study, sum(len(s.instances) for s in study.series))
            audit(self.session, self.clock, principal, "attach", "study", study_uid, self.remote_addr, case=case.uid)
        self.session.commit()
        return {"study_uid": study.study_uid, "case_uid": case.uid, "case_id": case.id}

    # -- reading -------------------------------------------------------------------------------
    def studies_of_case(self, principal: Principal, case_id: int) -> list[Study]:
        case = require_read(principal, self.session.get(Case, case_id))
        return list(self.session.scalars(select(Study).where(Study.case_id == case.id).order_by(Study.id)))

    def instance_file(self, principal: Principal, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """The file of one instance, if the caller may read the study it belongs to."""
        instance = self.session.scalar(
            select(Instance).join(Series).join(Study).where(
                Instance.sop_uid == sop_uid, Series.series_uid == series_uid, Study.study_uid == study_uid
            )
        )
        if instance is None:
            raise NotFound("No such instance.")
        self.require_study_read(principal, instance.series.study)
        audit(self.session, self.clock, principal, "read", "instance", sop_uid, self.remote_addr)
        self.session.commit()
        return self.image_dir / instance.path

    def require_study_read(self, principal: Principal, study: Study) -> None:
        if study.case_id is not None:
            require_read(principal, self.session.get(Case, study.case_id))
        elif principal.role is not Role.SUPERVISOR and (
            principal.spoke_id is None or principal.spoke_id != study.spoke_id
        ):
            raise NotFound("No such study.")  # unlinked: for its own spoke and supervisors only


def _read_header(raw: bytes) -> dict[str, Any]:
    """The attributes the store needs; raises PartRejected for what is not a whole DICOM file."""
    try:
        ds = pydicom.dcmread(BytesIO(raw))
    except InvalidDicomError:
        raise PartRejected(CANNOT_UNDERSTAND, "not a DICOM file (no DICM preamble and file meta)") from None
    except Exception as exc:  # pydicom raises many types on damaged input
        # Name the instance if its file meta is readable, so the sender can set it aside.
        sop_class, sop_uid = _ids_from_file_meta(raw)
        raise PartRejected(CANNOT_UNDERSTAND, f"damaged DICOM data: {exc}", sop_class, sop_uid) from None
    sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
    sop_uid = str(ds.get("SOPInstanceUID", ""))
    meta_uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID", ""))
    for name, value in (("SOPInstanceUID", sop_uid), ("SOPClassUID", sop_class),
                        ("StudyInstanceUID", str(ds.get("StudyInstanceUID", ""))),
                        ("SeriesInstanceUID", str(ds.get("SeriesInstanceUID", "")))):
        if not value or not _UID.match(value) or len(value) > 64:
            raise PartRejected(CANNOT_UNDERSTAND, f"{name} is missing or not a valid UID", sop_class,
                               sop_uid or meta_uid)
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    _check_pixel_data(ds, transfer_syntax, sop_class, sop_uid)
    if meta_uid and meta_uid != sop_uid:
        raise PartRejected(CANNOT_UNDERSTAND, "the file meta names another SOP instance", sop_class, meta_uid)
    return {
        "sop_uid": sop_uid, "sop_class": sop_class, "transfer_syntax": transfer_syntax,
        "study_uid": str(ds.StudyInstanceUID), "series_uid": str(ds.SeriesInstanceUID),
        "patient_id": str(ds.get("PatientID", ""))[:64], "accession": str(ds.get("AccessionNumber", ""))[:16],
        "study_date": str(ds.get("StudyDate", ""))[:8], "modality": str(ds.get("Modality", ""))[:16],
        "study_description": str(ds.get("StudyDescription", ""))[:200],
        "series_description": str(ds.get("SeriesDescription", ""))[:200],
        "series_number": _int(ds.get("SeriesNumber")), "number": _int(ds.get("InstanceNumber")),
        "frames": _int(ds.get("NumberOfFrames")) or 1,
    }


def _with_preamble(raw: bytes) -> bytes:
    """Add the 128-byte preamble and DICM prefix that some writers leave out (pydicom's dcmwrite
    of a new dataset, as dicomweb-client sends it), so that every stored file is Part 10."""
    if raw[:2] == b"\x02\x00" and raw[4:6].isalpha():  # starts with a file meta element (explicit VR)
        return b"\x00" * 128 + b"DICM" + raw
    return raw


def _ids_from_file_meta(raw: bytes) -> tuple[str, str]:
    try:
        meta = read_file_meta_info(BytesIO(raw))
    except Exception:
        return "", ""
    sop_class, sop_uid = str(meta.get("MediaStorageSOPClassUID", "")), str(meta.get("MediaStorageSOPInstanceUID", ""))
    valid = [uid if _UID.match(uid) and len(uid) <= 64 else "" for uid in (sop_class, sop_uid)]
    return valid[0], valid[1]


def _check_pixel_data(ds: Any, transfer_syntax: str, sop_class: str, sop_uid: str) -> None:
    """Refuse uncompressed pixel data shorter than its rows x columns x frames say (truncated)."""
    if "PixelData" not in ds or transfer_syntax.startswith(_ENCAPSULATED_PREFIX) or transfer_syntax.endswith(".5"):
        return
    try:
        expected = (
            int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
            * int(ds.get("NumberOfFrames", 1) or 1) * ((int(ds.BitsAllocated) + 7) // 8)
        )
    except (AttributeError, TypeError, ValueError):
        raise PartRejected(CANNOT_UNDERSTAND, "pixel data without rows, columns or bits allocated", sop_class, sop_uid) from None
    if len(ds.PixelData) < expected:
        raise PartRejected(CANNOT_UNDERSTAND, "the pixel data is truncated", sop_class, sop_uid)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
