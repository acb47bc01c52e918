"""Reading the hub's image store as DICOMweb describes it: QIDO-RS searches and the instances,
metadata and frames behind WADO-RS, each scoped like the REST API and each read audited.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, true
from sqlalchemy.orm import Session

from hub.persistence.models import Case, Instance, Series, Study
from hub.services.access import case_scope, require_role
from hub.services.audit import audit
from hub.services.auth import Principal
from hub.services.rendering import run_cpu
from shared.clock import Clock
from shared.enums import Role
from shared.errors import InvalidInput, NotFound

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_DATE = re.compile(r"^\d{8}$")

# QIDO-RS query keys: keyword and tag spellings of the attributes we can match.
STUDY_KEYS = {
    "StudyInstanceUID": "0020000D",
    "PatientID": "00100020",
    "AccessionNumber": "00080050",
    "StudyDate": "00080020",
    "ModalitiesInStudy": "00080061",
}
SERIES_KEYS = {"SeriesInstanceUID": "0020000E", "Modality": "00080060", "SeriesNumber": "00200011"}
INSTANCE_KEYS = {
    "SOPInstanceUID": "00080018",
    "SOPClassUID": "00080016",
    "InstanceNumber": "00200013",
}


@dataclass
class Query:
    """A parsed QIDO-RS query: matching values by keyword, paging, and our ``linked`` filter."""

    match: dict[str, str] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    linked: bool | None = None


def parse_query(args: Mapping[str, str], keys: Mapping[str, str]) -> Query:
    """Read QIDO-RS parameters; unknown ones (includefield, fuzzymatching...) are ignored."""
    by_tag = {tag: name for name, tag in keys.items()}
    query = Query()
    for raw_key, value in args.items():
        key = by_tag.get(raw_key.upper(), raw_key)
        if key in keys and value != "":
            query.match[key] = value
    query.limit = _int_arg(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    query.offset = _int_arg(args, "offset", 0, 0, 10**9)
    if "linked" in args:
        query.linked = args["linked"].lower() in ("1", "true", "yes")
    return query


def _int_arg(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(args.get(name, default))
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number.", fields={name: [args[name]]}) from None
    return max(low, min(high, value))


def study_scope(principal: Principal) -> ColumnElement[bool]:
    """Studies the caller may read: those of readable cases, and its own spoke's unlinked ones."""
    if principal.role is Role.SUPERVISOR:
        return true()
    linked = Study.case_id.in_(select(Case.id).where(case_scope(principal)))
    own_spoke = Study.spoke_id == principal.spoke_id if principal.spoke_id is not None else false()
    return or_(linked, own_spoke)


def _text_match(column: Any, value: str) -> ColumnElement[bool]:
    """Single value matching with DICOM wildcards (* and ?); a list of values separated by
    commas."""
    values = [v for v in value.replace("\\", ",").split(",") if v]
    conditions = []
    for v in values:
        if "*" in v or "?" in v:
            pattern = v.replace("%", r"\%").replace("_", r"\_").replace("*", "%").replace("?", "_")
            conditions.append(column.like(pattern, escape="\\"))
        else:
            conditions.append(column == v)
    return or_(*conditions) if conditions else true()


def _date_match(column: Any, value: str) -> ColumnElement[bool]:
    """A date or a range (``A-B``, ``A-``, ``-B``) of YYYYMMDD dates."""
    start, dash, end = value.replace(" ", "").partition("-")
    for part in (start, end):
        if part and not _DATE.match(part):
            raise InvalidInput(
                "StudyDate must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD.",
                fields={"StudyDate": [value]},
            )
    if not dash:
        return and_(column == start)
    conditions = [column != ""]
    if start:
        conditions.append(column >= start)
    if end:
        conditions.append(column <= end)
    return and_(*conditions)


def attr(vr: str, *values: Any) -> dict[str, Any]:
    """A DICOM JSON attribute (PS3.18 F.2); empty values give an attribute without Value."""
    kept = [v for v in values if v not in (None, "")]
    if vr == "PN":
        kept = [{"Alphabetic": str(v)} for v in kept]
    return {"vr": vr, "Value": kept} if kept else {"vr": vr}


@dataclass
class ImageReader:
    """QIDO-RS and WADO-RS reads for one request."""

    session: Session
    clock: Clock
    image_dir: Path
    base_url: str
    remote_addr: str = ""

    # -- QIDO-RS ---------------------------------------------------------------------------------
    def search_studies(self, principal: Principal, query: Query) -> list[dict[str, Any]]:
        # Admins see no clinical content: refused, not an empty answer (DESIGN.md, "Roles").
        require_role(
            principal, Role.SPOKE_DOCTOR, Role.SPECIALIST, Role.SUPERVISOR, spoke_service=True
        )
        stmt = select(Study).where(study_scope(principal))
        stmt = (
            self._filter_studies(stmt, query)
            .order_by(Study.id)
            .limit(query.limit)
            .offset(query.offset)
        )
        studies = list(self.session.scalars(stmt))
        counts = self._study_counts([s.id for s in studies])
        audit(
            self.session,
            self.clock,
            principal,
            "search",
            "studies",
            len(studies),
            self.remote_addr,
            query=query.match,
        )
        self.session.commit()
        return [self._study_json(s, *counts.get(s.id, (0, 0, []))) for s in studies]

    def _filter_studies(self, stmt: Select[Any], query: Query) -> Select[Any]:
        m = query.match
        if "StudyInstanceUID" in m:
            stmt = stmt.where(
                Study.study_uid.in_(m["StudyInstanceUID"].replace("\\", ",").split(","))
            )
        if "PatientID" in m:
            stmt = stmt.where(_text_match(Study.patient_id, m["PatientID"]))
        if "AccessionNumber" in m:
            stmt = stmt.where(_text_match(Study.accession_number, m["AccessionNumber"]))
        if "StudyDate" in m:
            stmt = stmt.where(_date_match(Study.study_date, m["StudyDate"]))
        if "ModalitiesInStudy" in m:
            wanted = [v for v in m["ModalitiesInStudy"].replace("\\", ",").split(",") if v]
            stmt = stmt.where(
                Study.id.in_(select(Series.study_id).where(Series.modality.in_(wanted)))
            )
        if query.linked is not None:
            stmt = stmt.where(
                Study.case_id.is_not(None) if query.linked else Study.case_id.is_(None)
            )
        return stmt

    def _study_counts(self, ids: list[int]) -> dict[int, tuple[int, int, list[str]]]:
        if not ids:
            return {}
        rows = self.session.execute(
            select(Series.study_id, Series.modality, func.count(Instance.id))
            .join(Instance, Instance.series_id == Series.id, isouter=True)
            .where(Series.study_id.in_(ids))
            .group_by(Series.id, Series.study_id, Series.modality)
        ).all()
        out: dict[int, tuple[int, int, list[str]]] = {}
        for study_id, modality, n in rows:
            n_series, n_instances, modalities = out.get(study_id, (0, 0, []))
            if modality and modality not in modalities:
                modalities = [*modalities, modality]
            out[study_id] = (n_series + 1, n_instances + int(n), modalities)
        return out

    def _study_json(
        self, study: Study, n_series: int, n_instances: int, modalities: list[str]
    ) -> dict[str, Any]:
        header = self._first_header(study)
        return {
            "00080020": attr("DA", study.study_date),
            "00080030": attr("TM", str(header.get("StudyTime", ""))),
            "00080050": attr("SH", study.accession_number),
            "00080061": attr("CS", *sorted(modalities)),
            "00081030": attr("LO", study.description),
            "00081190": attr("UR", f"{self.base_url}/studies/{study.study_uid}"),
            "00100010": attr("PN", str(header.get("PatientName", ""))),
            "00100020": attr("LO", study.patient_id),
            "0020000D": attr("UI", study.study_uid),
            "00200010": attr("SH", str(header.get("StudyID", ""))),
            "00201206": attr("IS", n_series),
            "00201208": attr("IS", n_instances),
        }

    def _first_header(self, study: Study) -> Any:
        path = self.session.scalar(
            select(Instance.path)
            .join(Series)
            .where(Series.study_id == study.id)
            .order_by(Instance.id)
            .limit(1)
        )
        if path is None:
            return {}
        try:
            return dcmread(
                self.image_dir / path,
                stop_before_pixels=True,
                specific_tags=["PatientName", "StudyTime", "StudyID"],
            )
        except Exception:  # a missing file must not break a search
            return {}

    def search_series(
        self, principal: Principal, study_uid: str, query: Query
    ) -> list[dict[str, Any]]:
        study = self._study(principal, study_uid)
        stmt = (
            select(Series, func.count(Instance.id))
            .join(Instance, isouter=True)
            .where(Series.study_id == study.id)
        )
        m = query.match
        if "SeriesInstanceUID" in m:
            stmt = stmt.where(Series.series_uid.in_(m["SeriesInstanceUID"].split(",")))
        if "Modality" in m:
            stmt = stmt.where(_text_match(Series.modality, m["Modality"]))
        if "SeriesNumber" in m:
            stmt = stmt.where(Series.number == _int_or_400("SeriesNumber", m["SeriesNumber"]))
        stmt = (
            stmt.group_by(Series.id)
            .order_by(Series.number, Series.id)
            .limit(query.limit)
            .offset(query.offset)
        )
        rows = self.session.execute(stmt).all()
        self._audit(principal, "search", "series", study_uid, case_id=study.case_id)
        return [self._series_json(study, series, int(n)) for series, n in rows]

    def _series_json(self, study: Study, series: Series, n_instances: int) -> dict[str, Any]:
        return {
            "00080060": attr("CS", series.modality),
            "0008103E": attr("LO", series.description),
            "00081190": attr(
                "UR", f"{self.base_url}/studies/{study.study_uid}/series/{series.series_uid}"
            ),
            "0020000D": attr("UI", study.study_uid),
            "0020000E": attr("UI", series.series_uid),
            "00200011": attr("IS", series.number),
            "00201209": attr("IS", n_instances),
        }

    def search_instances(
        self, principal: Principal, study_uid: str, series_uid: str | None, query: Query
    ) -> list[dict[str, Any]]:
        study = self._study(principal, study_uid)
        stmt = select(Instance).join(Series).where(Series.study_id == study.id)
        if series_uid is not None:
            stmt = stmt.where(Series.series_uid == series_uid)
        m = query.match
        if "SOPInstanceUID" in m:
            stmt = stmt.where(Instance.sop_uid.in_(m["SOPInstanceUID"].split(",")))
        if "SOPClassUID" in m:
            stmt = stmt.where(Instance.sop_class_uid == m["SOPClassUID"])
        if "InstanceNumber" in m:
            stmt = stmt.where(Instance.number == _int_or_400("InstanceNumber", m["InstanceNumber"]))
        stmt = (
            stmt.order_by(Series.number, Instance.number, Instance.id)
            .limit(query.limit)
            .offset(query.offset)
        )
        instances = list(self.session.scalars(stmt))
        self._audit(principal, "search", "instances", study_uid, case_id=study.case_id)
        return [self._instance_json(study, i) for i in instances]

    def _instance_json(self, study: Study, instance: Instance) -> dict[str, Any]:
        series_uid = instance.series.series_uid
        series_url = f"{self.base_url}/studies/{study.study_uid}/series/{series_uid}"
        url = f"{series_url}/instances/{instance.sop_uid}"
        return {
            "00080016": attr("UI", instance.sop_class_uid),
            "00080018": attr("UI", instance.sop_uid),
            "00081190": attr("UR", url),
            "0020000D": attr("UI", study.study_uid),
            "0020000E": attr("UI", series_uid),
            "00200013": attr("IS", instance.number),
            "00280008": attr("IS", instance.frames),
            "00083002": attr("UI", instance.transfer_syntax_uid),
        }

    # -- WADO-RS -------------------------------------------------------------------------------
    def instances(
        self,
        principal: Principal,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[Instance]:
        """The stored instances of a study, series or one instance; 404 if none or not readable."""
        study = self._study(principal, study_uid)
        stmt = select(Instance).join(Series).where(Series.study_id == study.id)
        if series_uid is not None:
            stmt = stmt.where(Series.series_uid == series_uid)
        if sop_uid is not None:
            stmt = stmt.where(Instance.sop_uid == sop_uid)
        found = list(
            self.session.scalars(stmt.order_by(Series.number, Instance.number, Instance.id))
        )
        if not found:
            raise NotFound("No such series." if sop_uid is None else "No such instance.")
        self._audit(
            principal,
            "read",
            "instance" if sop_uid else ("series" if series_uid else "study"),
            sop_uid or series_uid or study_uid,
            case_id=study.case_id,
            instances=len(found),
        )
        return found

    def path_of(self, instance: Instance) -> Path:
        return self.image_dir / instance.path

    def metadata(
        self,
        principal: Principal,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
    ) -> list[dict[str, Any]]:
        """DICOM JSON of each instance without its bulk data, which is named by a BulkDataURI."""
        found = self.instances(principal, study_uid, series_uid, sop_uid)
        jobs = [(self.path_of(i), self._instance_url(study_uid, i)) for i in found]
        return run_cpu(_metadata_of_files, jobs)

    def _instance_url(self, study_uid: str, instance: Instance) -> str:
        series_url = f"{self.base_url}/studies/{study_uid}/series/{instance.series.series_uid}"
        return f"{series_url}/instances/{instance.sop_uid}"

    # -- helpers ---------------------------------------------------------------------------------
    def _study(self, principal: Principal, study_uid: str) -> Study:
        study = self.session.scalar(
            select(Study).where(Study.study_uid == study_uid, study_scope(principal))
        )
        if study is None:
            raise NotFound("No such study.")
        return study

    def _audit(
        self,
        principal: Principal,
        action: str,
        kind: str,
        object_id: str,
        case_id: int | None = None,
        **detail: Any,
    ) -> None:
        audit(
            self.session,
            self.clock,
            principal,
            action,
            kind,
            object_id,
            self.remote_addr,
            case_id=case_id,
            **detail,
        )
        self.session.commit()


def _int_or_400(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number.", fields={name: [value]}) from None


def _uri_of(url: str) -> Callable[[Any], str]:
    """Bulk data (e.g. overlays, pixel data) is named by the instance's URL, not inlined."""
    return lambda _element: url


def _metadata_of_files(jobs: list[tuple[Path, str]]) -> list[dict[str, Any]]:
    out = []
    for path, url in jobs:
        ds = dcmread(path, stop_before_pixels=True)
        data = ds.to_json_dict(bulk_data_threshold=4096, bulk_data_element_handler=_uri_of(url))
        if "Rows" in ds:
            data["7FE00010"] = {
                "vr": "OB" if ds.file_meta.TransferSyntaxUID.is_compressed else "OW",
                "BulkDataURI": url,
            }
        out.append(data)
    return out
