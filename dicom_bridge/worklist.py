"""Modality Worklist from the clinic's open cases: the modality pulls patient, accession number
and requested procedure from the case, so its images come back linked to it.

The cases come from the spoke's ``GET /api/v1/worklist`` (the bridge's service token, the same
one it uses at the hub): the spoke owns the cases, the bridge only presents them as DICOM.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

import requests
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

logger = logging.getLogger(__name__)

_SEX = {"male": "M", "female": "F"}


class WorklistUnavailable(Exception):
    """The spoke could not be asked and no earlier answer is known."""


class WorklistSource(Protocol):
    def open_cases(self) -> list[dict[str, Any]]: ...


class SpokeWorklist:
    """Open cases from the spoke; the last good answer is used while the spoke does not answer."""

    def __init__(self, spoke_url: str, token: str, timeout_s: float = 5.0) -> None:
        self.url = spoke_url.rstrip("/") + "/api/v1/worklist"
        self.token = token
        self.timeout_s = timeout_s
        self._last: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def open_cases(self) -> list[dict[str, Any]]:
        try:
            response = requests.get(
                self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=self.timeout_s
            )
            response.raise_for_status()
            items = list(response.json()["items"])
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            with self._lock:
                if self._last is None:
                    raise WorklistUnavailable(
                        f"the spoke's worklist at {self.url} did not answer: {exc}"
                    ) from exc
                logger.warning("worklist: spoke did not answer (%s); using the last list", exc)
                return list(self._last)
        with self._lock:
            self._last = items
        return items


def study_uid_for_case(case_uid: str) -> str:
    """A StudyInstanceUID derived from the case's UUID (PS3.5 B.2: ``2.25.<uuid as integer>``)."""
    try:
        return f"2.25.{uuid.UUID(case_uid).int}"
    except ValueError:
        return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, case_uid).int}"


def worklist_item(case: dict[str, Any], modality: str = "", station_aet: str = "") -> Dataset:
    """One scheduled procedure step for ``case`` (the spoke's case JSON)."""
    patient = case.get("patient") or {}
    created = _created(case)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = str(patient.get("pseudonym") or "")[:64]
    ds.PatientID = str(patient.get("pseudonym") or "")[:64]
    ds.PatientSex = _SEX.get(str(patient.get("sex") or ""), "O")
    ds.PatientBirthDate = ""
    age = patient.get("age")
    ds.PatientAge = f"{int(age):03d}Y" if isinstance(age, int) and 0 <= age < 1000 else ""
    ds.AccessionNumber = str(case.get("accession_number") or "")[:16]
    ds.StudyInstanceUID = study_uid_for_case(str(case.get("uid") or ""))
    ds.RequestedProcedureID = str(case.get("token") or case.get("accession_number") or "")[:16]
    ds.RequestedProcedureDescription = _line(case.get("complaint"))
    ds.ReferringPhysicianName = str(case.get("raised_by") or "")[:64]
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station_aet
    step.ScheduledProcedureStepStartDate = created.strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = created.strftime("%H%M%S")
    step.ScheduledProcedureStepDescription = _line(case.get("question"))
    step.ScheduledProcedureStepID = str(case.get("accession_number") or "")[:16]
    step.ScheduledPerformingPhysicianName = ""
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def find(query: Dataset, cases: list[dict[str, Any]]) -> Iterator[Dataset]:
    """Yield the worklist items matching ``query``, holding only the attributes it asked for."""
    step_query = _first_step(query)
    modality = str(step_query.get("Modality", "") or "") if step_query is not None else ""
    station = (
        str(step_query.get("ScheduledStationAETitle", "") or "") if step_query is not None else ""
    )
    for case in cases:
        item = worklist_item(case, modality, station)
        if _matches(query, item):
            yield _restrict(query, item)


def _matches(query: Dataset, item: Dataset) -> bool:
    for keyword in (
        "PatientName",
        "PatientID",
        "AccessionNumber",
        "RequestedProcedureID",
        "StudyInstanceUID",
    ):
        if not _match_text(query.get(keyword), item.get(keyword)):
            return False
    step_query, step = _first_step(query), item.ScheduledProcedureStepSequence[0]
    if step_query is not None:
        wanted = str(step_query.get("ScheduledProcedureStepStartDate", "") or "")
        if wanted and not _match_date(wanted, str(step.ScheduledProcedureStepStartDate)):
            return False
    return True


def _match_text(wanted: Any, value: Any) -> bool:
    pattern = str(wanted or "").strip()
    if not pattern or pattern == "*":
        return True
    return fnmatch.fnmatchcase(str(value or ""), pattern)


def _match_date(wanted: str, value: str) -> bool:
    start, dash, end = wanted.partition("-")
    if not dash:
        return value == start
    return (not start or value >= start) and (not end or value <= end)


def _restrict(query: Dataset, item: Dataset) -> Dataset:
    """The answer holds the query's keys (with our values, or empty if we have none)."""
    out = Dataset()
    if "SpecificCharacterSet" in item:
        out.SpecificCharacterSet = item.SpecificCharacterSet
    for element in query:
        keyword = element.keyword
        if keyword == "SpecificCharacterSet" or not keyword:
            continue
        if keyword == "ScheduledProcedureStepSequence":
            step_query = _first_step(query) or Dataset()
            out.ScheduledProcedureStepSequence = Sequence(
                [_restrict(step_query, item.ScheduledProcedureStepSequence[0])]
            )
            continue
        out[element.tag] = item.get(element.tag, element)
    return out


def _first_step(query: Dataset) -> Dataset | None:
    seq = query.get("ScheduledProcedureStepSequence")
    return seq[0] if seq else None


def _created(case: dict[str, Any]) -> datetime:
    """When the case was raised, on the clinic's clock (a modality asks for "today" there)."""
    try:
        created = datetime.fromisoformat(str(case.get("created_at")))
    except ValueError:
        return datetime.now()
    return created.astimezone() if created.tzinfo is not None else created


def _line(text: Any) -> str:
    """Free text as a DICOM LO value: one line, at most 64 characters, no backslash."""
    return " ".join(str(text or "").replace("\\", "/").split())[:64]
