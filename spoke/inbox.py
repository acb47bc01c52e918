"""The clinic's image inbox: studies the hub received from this clinic's bridge that matched no
case (no or an unknown AccessionNumber), to be attached to a case by hand. The hub keeps the
images; the spoke only lists them and asks the hub to link one (DICOMweb, spoke service token).
"""

from __future__ import annotations

from typing import Any

from shared.errors import Conflict, NotFound, TeleconsultError
from spoke.hub_api import HubApi, HubRefused, HubUnavailable


class InboxUnavailable(TeleconsultError):
    """The inbox lives at the hub: without a link to it, it cannot be shown or changed."""

    code = "hub_unavailable"
    http_status = 503


def _value(item: dict[str, Any], tag: str) -> Any:
    values = (item.get(tag) or {}).get("Value") or [None]
    value = values[0]
    return value.get("Alphabetic") if isinstance(value, dict) else value


def study_summary(item: dict[str, Any]) -> dict[str, Any]:
    """One QIDO-RS study (DICOM JSON) in the words of the clinic's pages."""
    return {
        "study_uid": _value(item, "0020000D"),
        "patient_name": _value(item, "00100010") or "",
        "patient_id": _value(item, "00100020") or "",
        "accession_number": _value(item, "00080050") or "",
        "study_date": _value(item, "00080020") or "",
        "description": _value(item, "00081030") or "",
        "modalities": list((item.get("00080061") or {}).get("Value") or []),
        "instances": _value(item, "00201208") or 0,
    }


class Inbox:
    def __init__(self, hub_api: HubApi) -> None:
        self.hub_api = hub_api

    def studies(self) -> list[dict[str, Any]]:
        try:
            return [study_summary(item) for item in self.hub_api.unlinked_studies()]
        except HubUnavailable as exc:
            raise InboxUnavailable(
                "The hub cannot be reached now: the inbox is shown when the link is back."
            ) from exc
        except HubRefused as exc:
            raise InboxUnavailable(f"The hub refused to list the inbox: {exc.message}") from exc

    def attach(self, study_uid: str, case_uid: str, doctor: str | None = None) -> dict[str, Any]:
        try:
            return self.hub_api.attach_study(study_uid, case_uid, doctor)
        except HubUnavailable as exc:
            raise InboxUnavailable(
                "The hub cannot be reached now: try again when the link is back."
            ) from exc
        except HubRefused as exc:
            if exc.status == 404:
                raise NotFound(exc.message) from exc
            if exc.status == 409:
                raise Conflict(exc.message) from exc
            raise InboxUnavailable(f"The hub refused: {exc.message}") from exc
