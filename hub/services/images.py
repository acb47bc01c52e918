"""The hub's image store: each DICOM instance once, as a file on disk plus a row, linked to its
case."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.persistence.models import Case, Instance, Series, Study
from hub.services.access import require_read, require_role
from hub.services.audit import audit
from hub.services.auth import Principal
from hub.services.events import record_case_event
from hub.services.rendering import run_cpu
from shared import protocol
from shared.clock import Clock
from shared.dicom import is_valid_uid
from shared.enums import Role
from shared.errors import Conflict, InvalidInput, NotFound
from teleconsult.files import commit_all_durably, start_writeback

log = logging.getLogger(__name__)

# STOW-RS failure reasons (PS3.18, table "Store Instances Response Failure Reasons").
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

_ENCAPSULATED_PREFIX = "1.2.840.10008.1.2.4"  # JPEG family; RLE is 1.2.840.10008.1.2.5
_PIXEL_DATA = 0x7FE00010
_DEFER_BYTES = 64 * 1024
_PREAMBLE = b"\x00" * 128 + b"DICM"
STALE_INCOMING_S = 3600.0  # a request's parts still in .incoming after this: its process died


class PartRejected(Exception):
    def __init__(self, reason: int, message: str, sop_class: str = "", sop_uid: str = "") -> None:
        super().__init__(message)
        self.reason, self.message, self.sop_class, self.sop_uid = (
            reason,
            message,
            sop_class,
            sop_uid,
        )


@dataclass
class StowResult:
    referenced: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, rejected: PartRejected) -> None:
        log.info("STOW part refused: %s", rejected.message)
        self.failed.append(
            {
                "sop_class": rejected.sop_class,
                "sop_uid": rejected.sop_uid,
                "reason": rejected.reason,
                "message": rejected.message,
            }
        )


@dataclass
class ImageService:
    session: Session
    clock: Clock
    image_dir: Path
    remote_addr: str = ""

    def store(
        self, principal: Principal, parts: Iterable[Iterable[bytes]], case_uid: str | None
    ) -> StowResult:
        """Store each DICOM part once; a bad part is reported as failed, never stored in half.

        ``parts`` are the request's parts as they arrive, each a run of chunks: each is written
        to a file beside the image store as it comes (never the whole request in memory). The
        new instances of one request are then made durable together, so that their flushes
        overlap, and recorded in one transaction; the answer comes when both are durable.
        """
        require_role(principal, Role.SPOKE_DOCTOR, spoke_service=True)
        with Incoming(self.image_dir) as incoming:
            received = [incoming.receive(chunks) for chunks in parts]
            if not received:
                raise InvalidInput("The request holds no DICOM instance.")
            return self._store_received(principal, received, case_uid)

    def _store_received(
        self, principal: Principal, received: list[ReceivedPart], case_uid: str | None
    ) -> StowResult:
        result = StowResult()
        readable: dict[str, tuple[ReceivedPart, dict[str, Any]]] = {}  # first part of each UID
        for part in received:
            try:
                meta = _read_header(part)
            except PartRejected as rejected:
                result.refuse(rejected)
                continue
            readable.setdefault(meta["sop_uid"], (part, meta))
        case = self._case_by_uid(principal, case_uid) if case_uid else None
        for sop_uid, message in self._held_elsewhere(principal, readable).items():
            _, meta = readable.pop(sop_uid)
            result.refuse(
                PartRejected(PROCESSING_FAILURE, message, meta["sop_class"], meta["sop_uid"])
            )
        stored = self._stored_classes(list(readable))
        # End this reading transaction before the files are written: on SQLite it holds the
        # write lock, and every other request of the hub would wait for the disk too.
        self.session.commit()
        fresh = [part for uid, part in readable.items() if uid not in stored]
        try:
            added = self._add(principal, fresh, case)
        except OSError as exc:  # the disk failed: no new instance of this request is stored
            for _, meta in fresh:
                result.refuse(
                    PartRejected(
                        OUT_OF_RESOURCES,
                        f"cannot write the image: {exc.strerror}",
                        meta["sop_class"],
                        meta["sop_uid"],
                    )
                )
                del readable[meta["sop_uid"]]
            added = []
        for uid, (_, meta) in readable.items():
            result.referenced.append(
                {"sop_class": stored.get(uid, meta["sop_class"]), "sop_uid": uid}
            )
        relinked = self._relink(
            principal, [meta for uid, (_, meta) in readable.items() if uid in stored], case
        )
        for study, count in Counter(study for _, study in added).items():
            self._announce(study, count)
        for study in relinked:
            self._announce(study, self._instance_count(study))
        if added:
            audit(
                self.session,
                self.clock,
                principal,
                "store",
                "instances",
                len(added),
                self.remote_addr,
            )
        self.session.commit()
        return result

    def _case_by_uid(self, principal: Principal, case_uid: str) -> Case:
        case = self.session.scalar(select(Case).where(Case.uid == case_uid))
        return require_read(principal, case)

    def _held_elsewhere(
        self, principal: Principal, parts: dict[str, tuple[ReceivedPart, dict[str, Any]]]
    ) -> dict[str, str]:
        """Parts whose instance, series or study UID the hub already holds for another spoke (or,
        for a series, in another study), with the reason: UIDs are not secrets, so a clinic must
        not add to, take or overwrite another clinic's images by naming them."""
        if not parts:
            return {}
        metas = [meta for _, meta in parts.values()]
        instances = dict(
            self.session.execute(
                select(Instance.sop_uid, Study.spoke_id)
                .join(Series, Instance.series_id == Series.id)
                .join(Study, Series.study_id == Study.id)
                .where(Instance.sop_uid.in_([m["sop_uid"] for m in metas]))
            ).all()
        )
        studies = dict(
            self.session.execute(
                select(Study.study_uid, Study.spoke_id).where(
                    Study.study_uid.in_({m["study_uid"] for m in metas})
                )
            ).all()
        )
        series = {
            uid: (study_uid, spoke_id)
            for uid, study_uid, spoke_id in self.session.execute(
                select(Series.series_uid, Study.study_uid, Study.spoke_id)
                .join(Study, Series.study_id == Study.id)
                .where(Series.series_uid.in_({m["series_uid"] for m in metas}))
            ).all()
        }
        mine = principal.spoke_id
        refused = {}
        for meta in metas:
            known_series = series.get(meta["series_uid"])
            if meta["sop_uid"] in instances and instances[meta["sop_uid"]] != mine:
                refused[meta["sop_uid"]] = "this SOP instance UID is held for another clinic"
            elif meta["study_uid"] in studies and studies[meta["study_uid"]] != mine:
                refused[meta["sop_uid"]] = "this study UID is held for another clinic"
            elif known_series is not None and known_series[1] != mine:
                refused[meta["sop_uid"]] = "this series UID is held for another clinic"
            elif known_series is not None and known_series[0] != meta["study_uid"]:
                refused[meta["sop_uid"]] = "this series UID belongs to another study"
        return refused

    def _stored_classes(self, sop_uids: list[str]) -> dict[str, str]:
        """SOPInstanceUID -> SOPClassUID of the instances among ``sop_uids`` the hub already has."""
        rows = self.session.execute(
            select(Instance.sop_uid, Instance.sop_class_uid).where(Instance.sop_uid.in_(sop_uids))
        )
        return {uid: sop_class for uid, sop_class in rows}

    def _add(
        self,
        principal: Principal,
        fresh: list[tuple[ReceivedPart, dict[str, Any]]],
        case: Case | None,
    ) -> list[tuple[Instance, Study]]:
        """Put the files of new instances in place durably, then add their rows. Raises OSError."""
        if not fresh:
            return []
        moves = {part.path: self.image_dir / image_path(meta["sop_uid"]) for part, meta in fresh}
        run_cpu(commit_all_durably, moves)
        studies: dict[tuple[str, str], Study] = {}
        series: dict[str, Series] = {}
        rows = []
        for part, meta in fresh:
            study = studies.get((meta["study_uid"], meta["accession"]))
            if study is None:
                study = studies[meta["study_uid"], meta["accession"]] = self._study(
                    principal, meta, case
                )
            if meta["series_uid"] not in series:
                series[meta["series_uid"]] = self._series(study, meta)
            relative = image_path(meta["sop_uid"])
            instance = Instance(
                sop_uid=meta["sop_uid"],
                series_id=series[meta["series_uid"]].id,
                sop_class_uid=meta["sop_class"],
                transfer_syntax_uid=meta["transfer_syntax"],
                number=meta["number"],
                frames=meta["frames"],
                size=part.size,
                sha256=part.sha256,
                path=str(relative),
                created_at=self.clock.now(),
            )
            rows.append((instance, study))
        return self._insert(rows)

    def _insert(self, rows: list[tuple[Instance, Study]]) -> list[tuple[Instance, Study]]:
        """Insert the instances together; if a concurrent request stored some of them meanwhile
        (same UID, same file), one by one, skipping those. Returns the rows added."""
        try:
            with self.session.begin_nested():
                self.session.add_all(instance for instance, _ in rows)
        except IntegrityError:
            if len(rows) > 1:
                return [added for row in rows for added in self._insert([row])]
            # Only the concurrent store explains it: without that row, fail rather than confirm.
            sop_uid = rows[0][0].sop_uid
            self.session.scalars(select(Instance.id).where(Instance.sop_uid == sop_uid)).one()
            return []
        return rows

    def _study(self, principal: Principal, meta: dict[str, Any], case: Case | None) -> Study:
        study = self.session.scalar(select(Study).where(Study.study_uid == meta["study_uid"]))
        if study is None:
            study = Study(
                study_uid=meta["study_uid"],
                spoke_id=principal.spoke_id,
                patient_id=meta["patient_id"],
                accession_number=meta["accession"],
                study_date=meta["study_date"],
                description=meta["study_description"],
                created_at=self.clock.now(),
            )
            self.session.add(study)
        if study.case_id is None:
            linked = case or self._case_by_accession(principal, meta["accession"])
            study.case_id = linked.id if linked else None
        self.session.flush()
        return study

    def _relink(
        self, principal: Principal, known: list[dict[str, Any]], case: Case | None
    ) -> list[Study]:
        """Instances the hub has, sent again with a corrected AccessionNumber: their study moves
        to the case that accession number names, a case of the same spoke (never another's)."""
        moved = []
        for study_uid, accession in {(m["study_uid"], m["accession"]) for m in known}:
            study = self.session.scalar(select(Study).where(Study.study_uid == study_uid))
            if (
                study is None
                or not accession
                or accession == study.accession_number
                or study.spoke_id is None
                or study.spoke_id != principal.spoke_id
            ):
                continue
            target = (
                case
                if case is not None and case.accession_number == accession
                else self._case_by_accession(principal, accession)
            )
            if target is None or target.id == study.case_id or target.spoke_id != study.spoke_id:
                continue
            before = self.session.get(Case, study.case_id) if study.case_id else None
            study.case_id, study.accession_number = target.id, accession
            audit(
                self.session,
                self.clock,
                principal,
                "relink",
                "study",
                study_uid,
                self.remote_addr,
                case=target.uid,
                previous_case=before.uid if before else None,
            )
            moved.append(study)
        self.session.flush()
        return moved

    def _case_by_accession(self, principal: Principal, accession: str) -> Case | None:
        if not accession:
            return None
        return self.session.scalar(
            select(Case).where(
                Case.accession_number == accession, Case.spoke_id == principal.spoke_id
            )
        )

    def _series(self, study: Study, meta: dict[str, Any]) -> Series:
        series = self.session.scalar(select(Series).where(Series.series_uid == meta["series_uid"]))
        if series is None:
            series = Series(
                series_uid=meta["series_uid"],
                study=study,
                modality=meta["modality"],
                number=meta["series_number"],
                description=meta["series_description"],
            )
            self.session.add(series)
            self.session.flush()
        return series

    def _announce(self, study: Study, received: int) -> None:
        if study.case_id is None:
            return
        case = self.session.get_one(Case, study.case_id)
        total = self._instance_count(study)
        data = {
            "case_uid": case.uid,
            "study_uid": study.study_uid,
            "received": received,
            "instances": total,
        }
        record_case_event(self.session, self.clock, protocol.IMAGE_RECEIVED, case, data)

    def _instance_count(self, study: Study) -> int:
        """How many instances the study has, counted by the database (not loaded)."""
        count = select(func.count(Instance.id)).join(Series).where(Series.study_id == study.id)
        return self.session.scalar(count) or 0

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
            self._announce(study, self._instance_count(study))
            audit(
                self.session,
                self.clock,
                principal,
                "attach",
                "study",
                study_uid,
                self.remote_addr,
                case_id=case.id,
                case=case.uid,
            )
        self.session.commit()
        return {"study_uid": study.study_uid, "case_uid": case.uid, "case_id": case.id}

    # -- reading -------------------------------------------------------------------------------
    def studies_of_case(self, principal: Principal, case_id: int) -> list[Study]:
        case = require_read(principal, self.session.get(Case, case_id))
        studies = list(
            self.session.scalars(select(Study).where(Study.case_id == case.id).order_by(Study.id))
        )
        audit(
            self.session,
            self.clock,
            principal,
            "list",
            "studies",
            len(studies),
            self.remote_addr,
            case_id=case.id,
        )
        self.session.commit()
        return studies

    def instance_file(
        self, principal: Principal, study_uid: str, series_uid: str, sop_uid: str
    ) -> Path:
        """The file of one instance, if the caller may read the study it belongs to."""
        instance = self.session.scalar(
            select(Instance)
            .join(Series)
            .join(Study)
            .where(
                Instance.sop_uid == sop_uid,
                Series.series_uid == series_uid,
                Study.study_uid == study_uid,
            )
        )
        if instance is None:
            raise NotFound("No such instance.")
        self.require_study_read(principal, instance.series.study)
        audit(
            self.session,
            self.clock,
            principal,
            "read",
            "instance",
            sop_uid,
            self.remote_addr,
            case_id=instance.series.study.case_id,
        )
        self.session.commit()
        return self.image_dir / instance.path

    def require_study_read(self, principal: Principal, study: Study) -> None:
        if study.case_id is not None:
            require_read(principal, self.session.get(Case, study.case_id))
        elif principal.role is not Role.SUPERVISOR and (
            principal.spoke_id is None or principal.spoke_id != study.spoke_id
        ):
            raise NotFound("No such study.")  # unlinked: for its own spoke and supervisors only


def _read_header(part: ReceivedPart) -> dict[str, Any]:
    """The attributes the store needs; raises PartRejected for what is not a whole DICOM file.

    Values longer than ``_DEFER_BYTES`` (the pixel data) are skipped, not read: only their
    lengths are checked against the bytes the part holds.
    """
    try:
        ds = pydicom.dcmread(part.path, defer_size=_DEFER_BYTES)
    except InvalidDicomError:
        raise PartRejected(
            CANNOT_UNDERSTAND, "not a DICOM file (no DICM preamble and file meta)"
        ) from None
    except Exception as exc:  # pydicom raises many types on damaged input
        # Name the instance if its file meta is readable, so the sender can set it aside.
        sop_class, sop_uid = _ids_from_file_meta(part.path)
        raise PartRejected(
            CANNOT_UNDERSTAND, f"damaged DICOM data: {exc}", sop_class, sop_uid
        ) from None
    sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
    sop_uid = str(ds.get("SOPInstanceUID", ""))
    meta_uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID", ""))
    for name, value in (
        ("SOPInstanceUID", sop_uid),
        ("SOPClassUID", sop_class),
        ("StudyInstanceUID", str(ds.get("StudyInstanceUID", ""))),
        ("SeriesInstanceUID", str(ds.get("SeriesInstanceUID", ""))),
    ):
        if not value or not is_valid_uid(value):
            raise PartRejected(
                CANNOT_UNDERSTAND,
                f"{name} is missing or not a valid UID",
                sop_class,
                sop_uid or meta_uid,
            )
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    _check_pixel_data(ds, part.size, transfer_syntax, sop_class, sop_uid)
    if meta_uid and meta_uid != sop_uid:
        raise PartRejected(
            CANNOT_UNDERSTAND, "the file meta names another SOP instance", sop_class, meta_uid
        )
    return {
        "sop_uid": sop_uid,
        "sop_class": sop_class,
        "transfer_syntax": transfer_syntax,
        "study_uid": str(ds.StudyInstanceUID),
        "series_uid": str(ds.SeriesInstanceUID),
        "patient_id": str(ds.get("PatientID", ""))[:64],
        "accession": str(ds.get("AccessionNumber", ""))[:16],
        "study_date": str(ds.get("StudyDate", ""))[:8],
        "modality": str(ds.get("Modality", ""))[:16],
        "study_description": str(ds.get("StudyDescription", ""))[:200],
        "series_description": str(ds.get("SeriesDescription", ""))[:200],
        "series_number": _int(ds.get("SeriesNumber")),
        "number": _int(ds.get("InstanceNumber")),
        "frames": _int(ds.get("NumberOfFrames")) or 1,
    }


def _lacks_preamble(head: bytes) -> bool:
    """Whether a part starts with a file meta element (explicit VR) without the 128-byte
    preamble and DICM prefix, as some writers leave it (pydicom's dcmwrite of a new dataset, as
    dicomweb-client sends it)."""
    return head[:2] == b"\x02\x00" and head[4:6].isalpha()


def _ids_from_file_meta(path: Path) -> tuple[str, str]:
    try:
        meta = read_file_meta_info(path)
    except Exception:
        return "", ""
    sop_class, sop_uid = (
        str(meta.get("MediaStorageSOPClassUID", "")),
        str(meta.get("MediaStorageSOPInstanceUID", "")),
    )
    valid = [uid if is_valid_uid(uid) else "" for uid in (sop_class, sop_uid)]
    return valid[0], valid[1]


def _check_pixel_data(
    ds: Any, size: int, transfer_syntax: str, sop_class: str, sop_uid: str
) -> None:
    """Refuse uncompressed pixel data shorter than its rows x columns x frames say (truncated)."""
    if (
        "PixelData" not in ds
        or transfer_syntax.startswith(_ENCAPSULATED_PREFIX)
        or transfer_syntax.endswith(".5")
    ):
        return
    try:
        expected = (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("SamplesPerPixel", 1))
            * int(ds.get("NumberOfFrames", 1) or 1)
            * ((int(ds.BitsAllocated) + 7) // 8)
        )
    except (AttributeError, TypeError, ValueError):
        raise PartRejected(
            CANNOT_UNDERSTAND,
            "pixel data without rows, columns or bits allocated",
            sop_class,
            sop_uid,
        ) from None
    if _pixel_data_length(ds, size) < expected:
        raise PartRejected(CANNOT_UNDERSTAND, "the pixel data is truncated", sop_class, sop_uid)


def _pixel_data_length(ds: Any, size: int) -> int:
    """The bytes of pixel data a part of ``size`` bytes holds, without reading a deferred value."""
    element = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    if element.value is not None:
        return len(element.value)
    return max(0, min(int(element.length), size - int(element.value_tell)))


def image_path(sop_uid: str) -> Path:
    """Where an instance is kept, below the image directory: a name the hub makes (a hash of the
    SOP Instance UID), never a UID or anything else the sender chose (DESIGN.md, "Security
    rules"). The same instance sent again after a crash lands on the same file, not a new one."""
    name = hashlib.sha256(sop_uid.encode("ascii", "replace")).hexdigest()
    return Path(name[:2]) / f"{name}.dcm"


@dataclass(frozen=True)
class ReceivedPart:
    """One part of a STOW request on disk, not yet durable nor in place."""

    path: Path
    size: int
    sha256: str


class Incoming:
    """A STOW request's parts written to disk as they arrive, in a folder of the image store's
    file system (so that keeping a part is a rename); what is not kept is removed at the end."""

    def __init__(self, image_dir: Path) -> None:
        self.root = image_dir / ".incoming"
        self.folder = self.root
        self.count = 0

    def __enter__(self) -> Incoming:
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep()
        self.folder = Path(tempfile.mkdtemp(dir=self.root))
        return self

    def _sweep(self) -> None:
        """Remove what a process killed mid-request left (other processes' requests are young)."""
        stale = time.time() - STALE_INCOMING_S
        for folder in self.root.iterdir():
            with contextlib.suppress(OSError):
                if folder.stat().st_mtime < stale:
                    shutil.rmtree(folder, ignore_errors=True)

    def __exit__(self, *_: object) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def receive(self, chunks: Iterable[bytes]) -> ReceivedPart:
        """Write one part's chunks to a file (with the Part 10 preamble if it lacks one)."""
        self.count += 1
        path = self.folder / f"{self.count}.part"
        digest, size = hashlib.sha256(), 0
        pending = iter(chunks)
        head = b""
        for chunk in pending:  # enough of the start to see whether the preamble is there
            head += chunk
            if len(head) >= 6:
                break
        if _lacks_preamble(head):
            head = _PREAMBLE + head
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # images are private
        with open(fd, "wb") as out:
            for chunk in itertools.chain([head], pending):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            start_writeback(out.fileno())
        return ReceivedPart(path, size, digest.hexdigest())


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
