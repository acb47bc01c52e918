"""Documents of a case: the e-prescription PDF of one advice version and the public verification
of a printed one (DESIGN.md, "Documents and exchange").

Reading a PDF is reading the case's advice: the same scope rule (``access.require_read``) and
the same audit entry. Verification is public and answers only what a pharmacist needs to trust
the paper: valid or superseded, the case token, the date, the specialist and the hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.persistence.models import Advice, Case
from hub.services.access import require_read
from hub.services.audit import audit
from hub.services.auth import Principal
from hub.services.rendering import run_cpu
from hub.services.serialize import advice_dict
from shared.clock import Clock
from shared.errors import NotFound
from teleconsult.eprescription import (
    PrescriptionSheet,
    Translate,
    english,
    render_prescription,
    verification_url,
)

VALID = "valid"
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Letterhead:
    """What the hub prints on every e-prescription, from its settings."""

    hub_name: str
    base_url: str  # the hub's public URL: the verification link in the QR code
    tz: ZoneInfo
    translate: Translate = english  # the reader's language (the request's gettext)


@dataclass
class DocumentService:
    session: Session
    clock: Clock
    remote_addr: str = ""

    def prescription_pdf(
        self, principal: Principal, case_id: int, version: int, letterhead: Letterhead
    ) -> bytes:
        """The PDF of advice ``version`` of the case, for a reader of the case's advice."""
        case = require_read(principal, self.session.get(Case, case_id))
        advice = self.session.scalar(
            select(Advice).where(Advice.case_id == case.id, Advice.version == version)
        )
        if advice is None:
            raise NotFound(f"This case has no advice version {version}.")
        audit(
            self.session,
            self.clock,
            principal,
            "read",
            "advice",
            case.uid,
            self.remote_addr,
            version=version,
            document="pdf",
        )
        self.session.commit()
        sheet = PrescriptionSheet(
            advice=advice_dict(advice),
            hub_name=letterhead.hub_name,
            verify_url=verification_url(letterhead.base_url, advice.verification_code),
            tz=letterhead.tz,
            superseded_by=self._newest_version(advice) if self._is_superseded(advice) else None,
            translate=letterhead.translate,
        )
        # About a quarter of a second of CPU (font subsetting): off the event loop under eventlet.
        return run_cpu(render_prescription, sheet)

    def verify(self, code: str, hub_name: str) -> dict[str, Any]:
        """What the public may know of the e-prescription with this code; 404 if none."""
        advice = self.session.scalar(select(Advice).where(Advice.verification_code == code))
        if advice is None or not code:
            raise NotFound("No e-prescription has this verification code.")
        return {
            "status": SUPERSEDED if self._is_superseded(advice) else VALID,
            "token": advice.case.token,
            "issued_at": advice.issued_at.isoformat(),
            "specialist": {
                "name": advice.specialist_name,
                "qualification": advice.qualification,
                "registration_number": advice.registration_number,
            },
            "hub": hub_name,
        }

    def _newest_version(self, advice: Advice) -> int:
        newest = self.session.scalar(
            select(func.max(Advice.version)).where(Advice.case_id == advice.case_id)
        )
        return int(newest or advice.version)

    def _is_superseded(self, advice: Advice) -> bool:
        return self._newest_version(advice) > advice.version
