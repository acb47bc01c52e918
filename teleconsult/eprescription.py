"""The e-prescription as a PDF (DESIGN.md, "Documents and exchange"): one A4 page with the
letterhead, the patient, the advice, the prescription table, the signed-by block and a QR code of
the public verification URL.

Hub and spoke both call ``render_prescription`` with the advice in its wire form (the JSON the hub
sends), so the clinic makes the same document offline from the advice it stored. Made with fpdf2
(text, tables, embedded fonts) and segno (the QR code); DejaVu Sans renders Latin, Vietnamese and
Cyrillic names, Lohit Devanagari (fallback font, shaped by HarfBuzz) Hindi ones.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from teleconsult.localtime import local_time

log = logging.getLogger(__name__)

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
DEVANAGARI_FONTS = (
    Path("/usr/share/fonts/truetype/lohit-devanagari/Lohit-Devanagari.ttf"),
    Path("/usr/share/fonts/truetype/fonts-deva-extra/gargi.ttf"),
)
Translate = Callable[..., str]


def N_(msgid: str) -> str:
    """Marks a label for the catalogs (babel extracts ``N_``); translated when printed."""
    return msgid


def english(msgid: str, **params: object) -> str:
    """The labels as written (the default): gettext's interface, no catalog."""
    return msgid % params if params else msgid


DISPOSITIONS = {
    "manage_locally": N_("Manage locally"),
    "refer": N_("Refer"),
    "urgent_transfer": N_("Urgent transfer"),
}
COLUMNS = (
    ("#", 6),
    (N_("Drug"), 30),
    (N_("Strength"), 18),
    (N_("Dose"), 18),
    (N_("Route"), 14),
    (N_("Frequency"), 24),
    (N_("Duration"), 18),
    (N_("Instructions"), 52),
)
_QR_MM = 32.0
CORE_FONT = "helvetica"


@dataclass(frozen=True)
class PrescriptionSheet:
    """What one printed e-prescription shows: the advice (wire form), where it was issued, how to
    check it, and whether a newer version replaced it."""

    advice: Mapping[str, Any]
    hub_name: str
    verify_url: str | None
    tz: ZoneInfo
    superseded_by: int | None = None
    # The reader's language: gettext of the page's request (labels only; the advice as written).
    translate: Translate = english


def verification_url(base_url: str, code: str | None) -> str | None:
    """The public URL a pharmacist opens (the QR code): ``<hub>/verify/<code>``."""
    if not code:
        return None
    return f"{base_url.rstrip('/')}/verify/{code}"


def version_line(advice: Mapping[str, Any], translate: Translate = english) -> str:
    """'v1', or 'v2 supersedes v1' for a correction."""
    version = int(advice.get("version") or 1)
    if version > 1:
        _ = translate
        return _("v%(new)s supersedes v%(old)s", new=version, old=version - 1)
    return f"v{version}"


def render_prescription(sheet: PrescriptionSheet) -> bytes:
    """The PDF bytes of ``sheet``."""
    pdf = _Prescription(sheet)
    pdf.compose()
    return bytes(pdf.output())


class _Prescription(FPDF):
    def __init__(self, sheet: PrescriptionSheet) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.sheet = sheet
        self.a = sheet.advice
        self.set_margins(15, 14, 15)
        self.set_auto_page_break(True, margin=14)
        self.family = _load_fonts(self)
        version = version_line(self.a)
        self.set_title(f"E-prescription {self.a.get('case_token') or ''} {version}")
        self.set_author(str(_get(self.a, "specialist", "name")))
        self.set_creator(sheet.hub_name)

    def normalize_text(self, text: str) -> str:
        if self.family == CORE_FONT:  # no DejaVu: letters outside Latin-1 become '?', no error
            text = text.encode("latin-1", "replace").decode("latin-1")
        return str(super().normalize_text(text))

    def _(self, msgid: str, **params: object) -> str:
        return self.sheet.translate(msgid, **params)

    def font(self, size: float, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)

    def compose(self) -> None:
        self.add_page()
        self._letterhead()
        self._facts()
        if self.sheet.superseded_by:
            self._superseded_banner(self.sheet.superseded_by)
        self._section(self._("Assessment"), self.a.get("assessment"))
        self._section(self._("Recommendations"), self.a.get("recommendations"))
        self._prescriptions(self.a.get("prescriptions") or [])
        self._section(self._("Investigations"), self.a.get("investigations") or "—")
        self._outcome()
        self._signature()

    def _letterhead(self) -> None:
        top = self.get_y()
        width = self.epw - _QR_MM - 4
        self.font(16, bold=True)
        self.multi_cell(width, 7, self.sheet.hub_name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        spoke = self.a.get("spoke") or {}
        clinic = spoke.get("name") or spoke.get("code") or ""
        if spoke.get("name") and spoke.get("code"):
            clinic = f"{spoke['name']} ({spoke['code']})"
        self.font(11)
        self.multi_cell(
            width, 5.5, f"{self._('Clinic')}: {clinic}", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.font(13, bold=True)
        self.set_text_color(20, 70, 140)
        self.cell(width, 8, self._("E-prescription"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0)
        self._qr(top)
        self.set_y(max(self.get_y(), top + _QR_MM + 6))
        self.set_draw_color(20, 70, 140)
        self.set_line_width(0.6)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)

    def _qr(self, top: float) -> None:
        x = self.w - self.r_margin - _QR_MM
        url = self.sheet.verify_url
        self.font(6.5)
        if not url:
            self.set_xy(x, top + 10)
            self.multi_cell(
                _QR_MM, 3, self._("No verification code: ask the hub to check it."), align="C"
            )
            return
        buf = io.BytesIO()
        segno.make(url, error="m").save(buf, kind="png", scale=8, border=2)
        buf.seek(0)
        self.image(buf, x=x, y=top, w=_QR_MM, h=_QR_MM)
        self.set_xy(x - 6, top + _QR_MM)
        self.cell(_QR_MM + 6, 3.5, self._("Scan to verify"), align="C")

    def _facts(self) -> None:
        patient = self.a.get("patient") or {}
        sex = str(patient.get("sex") or "")
        person = self._(
            "%(name)s, %(age)s years, %(sex)s",
            name=patient.get("pseudonym", ""),
            age=patient.get("age", ""),
            sex=self._(sex) if sex else "",
        )
        rows = (
            (self._("Case"), str(self.a.get("case_token") or "")),
            (self._("Patient"), person),
            (self._("Issued"), local_time(self.a.get("issued_at"), self.sheet.tz)),
            (self._("Version"), version_line(self.a, self.sheet.translate)),
        )
        for label, value in rows:
            self.font(9.5, bold=True)
            self.cell(26, 5.5, label)
            self.font(9.5)
            self.multi_cell(0, 5.5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)

    def _superseded_banner(self, newer: int) -> None:
        self.set_fill_color(200, 30, 30)
        self.set_text_color(255)
        self.font(11, bold=True)
        text = self._("SUPERSEDED by version %(n)s: do not dispense from this version.", n=newer)
        self.cell(0, 8, text, fill=True, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0)
        self.set_fill_color(255)  # the table's cells take the current fill colour
        self.ln(2)

    def _heading(self, title: str) -> None:
        self.font(10.5, bold=True)
        self.set_text_color(20, 70, 140)
        self.cell(0, 6, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0)

    def _section(self, title: str, text: object) -> None:
        self._heading(title)
        self.font(9.5)
        self.multi_cell(0, 4.8, str(text or ""), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)

    def _prescriptions(self, items: list[Mapping[str, Any]]) -> None:
        self._heading(self._("Prescription"))
        if not items:
            self._section("", self._("No medicines prescribed."))
            return
        self.font(8.5)
        keys = ("drug", "strength", "dose", "route", "frequency", "duration", "instructions")
        with self.table(
            col_widths=[w for _, w in COLUMNS],
            line_height=4.6,
            text_align="LEFT",
            headings_style=_heading_style(self.family),
        ) as table:
            table.row([self._(label) if label != "#" else label for label, _ in COLUMNS])
            for n, item in enumerate(items, 1):
                table.row([str(n), *(str(item.get(k) or "") for k in keys)])
        self.ln(2.5)

    def _outcome(self) -> None:
        """Disposition and the follow-up plan (DESIGN.md, "Follow-up and check-ins": the date, and
        when given the check-in interval and the warning signs)."""
        disposition = str(self.a.get("disposition") or "")
        follow_up = self.a.get("follow_up_date")
        plan = _date_text(follow_up) if follow_up else self._("as needed")
        every = self.a.get("check_in_every_days")
        if every:
            plan += "; " + self._("check in every %(n)s days", n=every)
        shown = self._(DISPOSITIONS[disposition]) if disposition in DISPOSITIONS else disposition
        self._fact(self._("Disposition"), shown)
        self._fact(self._("Follow-up"), plan)
        if self.a.get("warning_signs"):
            self._fact(self._("Warning signs"), str(self.a["warning_signs"]))
        self.ln(3.5)

    def _fact(self, label: str, value: str) -> None:
        self.font(9.5, bold=True)
        self.cell(30, 5.5, label)
        self.font(9.5)
        self.multi_cell(0, 5.5, value, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def _signature(self) -> None:
        specialist = self.a.get("specialist") or {}
        x = self.w - self.r_margin - 80
        self.set_draw_color(0)
        self.set_line_width(0.3)
        self.ln(6)
        self.line(x, self.get_y(), x + 80, self.get_y())
        self.ln(1.5)
        name = str(specialist.get("name") or "")
        qualification = specialist.get("qualification")
        self.set_x(x)
        self.font(10, bold=True)
        self.multi_cell(80, 5, name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.font(9)
        registration = f"{self._('Registration no.')} {specialist.get('registration_number')}"
        for line in (qualification, registration):
            if line:
                self.set_x(x)
                self.multi_cell(80, 4.6, str(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(4)
        self.font(7.5)
        self.set_text_color(90)
        issued = local_time(self.a.get("issued_at"), self.sheet.tz)
        footer = (
            self._("Issued through %(hub)s on %(at)s", hub=self.sheet.hub_name, at=issued) + "."
        )
        if self.sheet.verify_url:
            footer += " " + self._("Verify at %(url)s", url=self.sheet.verify_url)
        self.multi_cell(0, 3.8, footer, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0)


def _heading_style(family: str) -> FontFace:
    return FontFace(family=family, emphasis="BOLD", fill_color=(225, 233, 245))


def _get(mapping: Mapping[str, Any], *keys: str) -> object:
    value: Any = mapping
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value or ""


def _date_text(value: object) -> str:
    if isinstance(value, date):
        return value.strftime("%d %b %Y")
    try:
        return date.fromisoformat(str(value)).strftime("%d %b %Y")
    except ValueError:
        return str(value)


def _load_fonts(pdf: FPDF) -> str:
    """DejaVu Sans (with a Devanagari fallback and text shaping) when installed (Debian's
    fonts-dejavu-core); else the PDF core font, with characters outside Latin-1 replaced."""
    regular = next(
        (d / "DejaVuSans.ttf" for d in FONT_DIRS if (d / "DejaVuSans.ttf").is_file()), None
    )
    if regular is None:
        log.warning("DejaVu Sans not found (install fonts-dejavu-core): names may lose letters")
        return CORE_FONT
    pdf.add_font("dejavu", "", str(regular))
    pdf.add_font("dejavu", "B", str(regular.with_name("DejaVuSans-Bold.ttf")))
    fallbacks = []
    for path in DEVANAGARI_FONTS:
        if path.is_file():
            pdf.add_font("deva", "", str(path))
            pdf.add_font("deva", "B", str(path))
            fallbacks.append("deva")
            break
    if fallbacks:
        pdf.set_fallback_fonts(fallbacks, exact_match=False)
    try:
        pdf.set_text_shaping(True)
    except Exception:  # uharfbuzz missing: conjuncts unshaped, still legible
        log.debug("text shaping unavailable", exc_info=True)
    return "dejavu"
