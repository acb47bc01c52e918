"""The e-prescription renderer alone: names in Hindi, Vietnamese and Russian are set in fonts
that have their letters (embedded), and the page stays one A4 page."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from teleconsult import eprescription
from teleconsult.eprescription import (
    DEVANAGARI_FONTS,
    FONT_DIRS,
    PrescriptionSheet,
    render_prescription,
)
from tests.conftest import need

ADVICE: dict[str, Any] = {
    "case_token": "MED-0007",
    "spoke": {"code": "PHC-2", "name": "Trạm y tế xã Hòa Bình"},
    "patient": {"pseudonym": "Пациент-0007", "age": 71, "sex": "male"},
    "version": 3,
    "specialist": {
        "name": "डॉ. प्रिया शर्मा",
        "qualification": "MD (Medicine)",
        "registration_number": "DMC-55012",
    },
    "assessment": "Community-acquired pneumonia, right lower lobe.",
    "recommendations": "Oral antibiotics; oxygen if SpO2 below 92 %.",
    "disposition": "manage_locally",
    "prescriptions": [
        {
            "drug": "Amoxicillin",
            "strength": "500 mg",
            "dose": "1",
            "route": "oral",
            "frequency": "three times a day",
            "duration": "7 days",
            "instructions": "",
        },
    ],  # fmt: skip
    "investigations": "",
    "follow_up_date": None,
    "check_in_every_days": 2,
    "warning_signs": "Breathless at rest, confusion.",
    "issued_at": "2026-11-29T18:45:00+00:00",
}


def _fonts(pdf: bytes) -> set[str]:
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    fonts = page["/Resources"]["/Font"]
    return {str(fonts[name].get_object()["/BaseFont"]) for name in fonts}


def test_names_in_three_scripts_use_fonts_that_have_their_letters() -> None:
    need(any((d / "DejaVuSans.ttf").is_file() for d in FONT_DIRS), "fonts-dejavu-core missing")
    need(any(p.is_file() for p in DEVANAGARI_FONTS), "fonts-deva missing")
    sheet = PrescriptionSheet(ADVICE, "Bệnh viện Trung ương", None, ZoneInfo("Asia/Ho_Chi_Minh"))
    pdf = render_prescription(sheet)
    reader = PdfReader(io.BytesIO(pdf))
    text = reader.pages[0].extract_text()
    assert len(reader.pages) == 1
    for expected in (
        "Bệnh viện Trung ương",
        "Trạm y tế xã Hòa Bình (PHC-2)",
        "Пациент-0007, 71 years, male",
        "v3 supersedes v2",
        "30 Nov 2026, 01:45 +07",
        "DMC-55012",
        "as needed; check in every 2 days",  # no follow-up date, but check-ins
        "Warning signs",
        "Breathless at rest, confusion.",
        "No verification code",  # none stored (older advice): no QR code, said plainly
    ):
        assert expected in text, expected
    fonts = _fonts(pdf)
    assert any("DejaVuSans" in f for f in fonts), fonts
    assert any("Devanagari" in f or "Gargi" in f.title() for f in fonts), fonts


def test_without_dejavu_names_lose_letters_but_the_pdf_is_still_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(eprescription, "FONT_DIRS", (tmp_path,))
    sheet = PrescriptionSheet(ADVICE, "Hub", "https://hub.example/verify/x", ZoneInfo("UTC"))
    reader = PdfReader(io.BytesIO(render_prescription(sheet)))
    text = reader.pages[0].extract_text()
    assert len(reader.pages) == 1 and "DMC-55012" in text and "?" in text
