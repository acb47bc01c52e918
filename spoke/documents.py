"""The clinic's copy of an e-prescription: the PDF made at the spoke from the advice it stored
(the same renderer and fields as the hub's), so printing needs no link to the hub."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from teleconsult.eprescription import (
    PrescriptionSheet,
    Translate,
    english,
    render_prescription,
    verification_url,
)
from teleconsult.localtime import zone


def prescription_pdf(
    settings: Mapping[str, Any],
    advice: Sequence[Mapping[str, Any]],
    version: int,
    translate: Translate = english,
) -> bytes | None:
    """The PDF of advice ``version`` among the case's stored ``advice``; None if not stored."""
    chosen = next((a for a in advice if int(a.get("version") or 0) == version), None)
    if chosen is None:
        return None
    newest = max(int(a.get("version") or 0) for a in advice)
    base = str(settings.get("hub_public_url") or settings.get("hub_url") or "")
    sheet = PrescriptionSheet(
        advice=chosen,
        hub_name=str(settings.get("hub_name") or ""),
        verify_url=verification_url(base, chosen.get("verification_code")),
        tz=zone(str(settings.get("timezone") or "UTC")),
        superseded_by=newest if newest > version else None,
        translate=translate,
    )
    return render_prescription(sheet)
