"""De-identification before data leaves the clinic: the DICOM PS3.15 Annex E Basic Application
Level Confidentiality Profile, the whole of table E.1-1, applied to every data set nested in
every sequence. The one owner of the rule: the bridge (modalities' images) and the spoke's upload
page (files, photos, reports) both call ``deidentify`` / ``deidentify_bytes``.

The table is the standard's, as dicom-anonymizer keeps it (``dicomfields_2026c``: tag -> basic
profile action code); the actions are applied here. UIDs are replaced by ``2.25.<HMAC of the
original>``, so re-sending an instance maps to the same new UIDs and a study, series or frame of
reference stays one. The key is the clinic's secret: without it nobody can confirm a guessed
original UID or patient ID by hashing it. Pure functions over a pydicom ``Dataset``: no I/O.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from io import BytesIO

from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

METHOD = "PS3.15 E.1 Basic Application Confidentiality Profile"
TABLE_EDITION = "dicomfields_2026c"  # DICOM 2026c, PS3.15 table E.1-1
# PS3.16 CID 7050: the profile and the options applied.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
MODIFIED_DATES_CODE = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")

# Action codes of table E.1-1 (PS3.15 E.3.1): D dummy value, Z zero length, X remove, K keep,
# C clean, U replace UID; combined codes let the implementation choose per attribute type.
X, Z, D, K, C, U = "X", "Z", "D", "K", "C", "U"
X_Z, X_D, Z_D, X_Z_D, X_Z_U = "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"
_CATEGORIES = {
    "D_TAGS": D,
    "Z_TAGS": Z,
    "X_TAGS": X,
    "U_TAGS": U,
    "Z_D_TAGS": Z_D,
    "X_Z_TAGS": X_Z,
    "X_D_TAGS": X_D,
    "X_Z_D_TAGS": X_Z_D,
    "X_Z_U_STAR_TAGS": X_Z_U,
}
# Where this implementation fixes an action: the document of an Encapsulated PDF is content, like
# pixels (kept only when the clinic allows burned-in identity, see check_burned_in); the patient
# keeps one stable pseudonym so that the hub can put a patient's studies together.
OVERRIDES = {
    Tag(0x0042, 0x0011): K,  # Encapsulated Document
    Tag(0x0010, 0x0020): D,  # Patient ID -> pseudonym
    Tag(0x0010, 0x0010): D,  # Patient's Name -> the same pseudonym
}
# Never shifted by the Modified Dates option: a shifted birth date still gives the age.
_NEVER_SHIFTED = {Tag(0x0010, 0x0030), Tag(0x0010, 0x0032)}
_STANDARD_UID_ROOT = "1.2.840.10008."  # the standard's UIDs (SOP classes, syntaxes) say nothing
_OVERLAY_GROUPS = range(0x6000, 0x6100)


def _load_table() -> tuple[dict[BaseTag, str], list[tuple[int, int, int, int, str]]]:
    database = dicom_anonymization_database_selector(TABLE_EDITION)
    exact: dict[BaseTag, str] = {}
    repeating: list[tuple[int, int, int, int, str]] = []
    for category, code in _CATEGORIES.items():
        for entry in database[category]:
            if len(entry) == 4:
                repeating.append((entry[0], entry[1], entry[2], entry[3], code))
            else:
                exact[Tag(entry[0], entry[1])] = code
    return exact, repeating


TABLE, REPEATING = _load_table()


def action_of(tag: BaseTag) -> str | None:
    """The table's action code for ``tag`` (repeating groups such as 60xx included), else None."""
    if tag in TABLE:
        return TABLE[tag]
    for group, element, group_mask, element_mask, code in REPEATING:
        if (tag.group & group_mask) == (group & group_mask) and (tag.element & element_mask) == (
            element & element_mask
        ):
            return code
    return None


class DeidRefused(ValueError):
    """The instance cannot leave the clinic de-identified (unreadable, or identity in pixels)."""


class BurnedInAnnotation(DeidRefused):
    """The image says its pixels show text (e.g. the patient's name): no profile can clean it."""


@dataclass(frozen=True)
class Profile:
    """How to de-identify: the clinic's secret ``key``, and the options the clinic chose."""

    key: bytes
    # Retain Longitudinal Temporal Information with Modified Dates: shift by a per-patient offset.
    shift_dates: bool = False
    allow_burned_in: bool = False


def new_uid(key: bytes, uid: str) -> str:
    """``uid`` replaced: ``2.25.`` and 128 bits of HMAC-SHA256 (PS3.5 B.2), stable per key."""
    digest = hmac.new(
        key, uid.strip().rstrip("\x00").encode("ascii", "replace"), hashlib.sha256
    ).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def pseudonym(key: bytes, patient_id: str) -> str:
    """A dummy PatientID that is the same for the same patient and says nothing about them."""
    digest = hmac.new(
        key, b"patient:" + patient_id.encode("utf-8", "replace"), hashlib.sha256
    ).hexdigest()
    return f"ANON-{digest[:12].upper()}"


def date_offset(key: bytes, patient_id: str) -> timedelta:
    """A per-patient shift of 1 to 365 days into the past: intervals between studies survive."""
    digest = hmac.new(
        key, b"dates:" + patient_id.encode("utf-8", "replace"), hashlib.sha256
    ).digest()
    return timedelta(days=1 + int.from_bytes(digest[:4], "big") % 365)


def check_burned_in(ds: Dataset, profile: Profile) -> None:
    """Refuse an image whose pixels carry annotation (BurnedInAnnotation YES), unless allowed."""
    value = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if value == "YES" and not profile.allow_burned_in:
        modality = str(ds.get("Modality", "") or "?")
        raise BurnedInAnnotation(
            f"{modality} image has BurnedInAnnotation=YES: the pixels may show the patient's "
            "identity "
            "and de-identification cannot remove it (set deid_allow_burned_in to forward anyway)"
        )


def deidentify(ds: Dataset, profile: Profile) -> Dataset:
    """Return a de-identified copy of ``ds`` (with its file meta); ``ds`` is not changed.

    Raises BurnedInAnnotation for an image that cannot be cleaned by this profile.
    """
    check_burned_in(ds, profile)
    out = copy.deepcopy(ds)
    patient_id = str(ds.get("PatientID", "") or "")
    run = _Run(profile, date_offset(profile.key, patient_id) if profile.shift_dates else None)
    out.remove_private_tags()  # recursive: the basic profile removes private attributes
    run.walk(out)
    out.PatientID = pseudonym(profile.key, patient_id)
    out.PatientName = out.PatientID
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = METHOD
    codes = [BASIC_PROFILE_CODE] + ([MODIFIED_DATES_CODE] if run.shift is not None else [])
    out.DeidentificationMethodCodeSequence = Sequence(
        [_code(value, meaning) for value, meaning in codes]
    )
    out.LongitudinalTemporalInformationModified = "MODIFIED" if run.shift is not None else "REMOVED"
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.file_meta = copy.deepcopy(meta)
        if "SOPInstanceUID" in out:
            out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    return out


def deidentify_bytes(data: bytes, profile: Profile) -> tuple[bytes, str]:
    """De-identified Part 10 bytes of the Part 10 ``data``, and the new SOPInstanceUID.

    Raises DeidRefused (BurnedInAnnotation among them) with the reason in words.
    """
    try:
        ds = dcmread(BytesIO(data))
        clean = deidentify(ds, profile)
        buffer = BytesIO()
        clean.save_as(buffer, enforce_file_format=True)
    except DeidRefused:
        raise
    except Exception as exc:  # pydicom raises many types on damaged input
        raise DeidRefused(f"cannot de-identify: {exc}") from exc
    return buffer.getvalue(), str(clean.SOPInstanceUID)


@dataclass
class _Run:
    profile: Profile
    shift: timedelta | None

    def walk(self, ds: Dataset) -> None:
        """Apply the table to ``ds`` and to every data set nested in its sequences."""
        for tag in list(ds.keys()):
            element = ds[tag]
            code = self._code_for(tag, element)
            if code == X:
                del ds[tag]
            elif code == Z:
                ds[tag] = _emptied(tag, element.VR)
            elif code in (D, C):
                self._dummy(ds, tag, element)
            elif code == U:
                self._replace_uids(ds, tag, element)
            if tag in ds and ds[tag].VR == "SQ" and ds[tag].value:
                for item in ds[tag].value:  # kept or dummied sequences: their items are cleaned
                    self.walk(item)

    def _code_for(self, tag: BaseTag, element: DataElement) -> str | None:
        """The one action to take: the table's code, resolved for this element (PS3.15 E.3.1)."""
        if tag.group in _OVERLAY_GROUPS and tag.group % 2 == 0:
            return X  # overlays may show text (names): the whole overlay goes, not only its data
        code = OVERRIDES.get(tag) or action_of(tag)
        dated = element.VR in ("DA", "DT", "TM")
        if code is None:
            if element.VR == "UI":
                return U  # every UID not the standard's is replaced, listed or not
            return Z if element.VR == "PN" else None  # a person's name, wherever it is
        if code == K:
            return None
        if self.shift is not None and dated and code != U and tag not in _NEVER_SHIFTED:
            return D  # Modified Dates option: dates shift, times stay
        if code in (X_Z, X_Z_D, Z_D):
            return Z  # zero length keeps a type 2 attribute present and says nothing
        if code == X_D:
            return X  # removal says least (a shifted date was handled above)
        if code == X_Z_U:
            return None if element.VR == "SQ" else Z  # the sequence stays; its UIDs are replaced
        return code

    def _dummy(self, ds: Dataset, tag: BaseTag, element: DataElement) -> None:
        if element.VR == "SQ":
            return  # the items stay and are cleaned attribute by attribute
        if element.VR == "UI":
            self._replace_uids(ds, tag, element)
        elif element.VR in ("DA", "DT", "TM"):
            ds[tag].value = self._date(element)
        else:
            ds[tag].value = _DUMMIES.get(element.VR)

    def _date(self, element: DataElement) -> str | None:
        text = str(element.value or "")
        if element.VR == "TM":
            return text if self.shift is not None else "000000"
        if self.shift is None:
            return "19000101" + ("000000" if element.VR == "DT" else "")
        return _shifted(text, element.VR, self.shift)

    def _replace_uids(self, ds: Dataset, tag: BaseTag, element: DataElement) -> None:
        if element.VR != "UI":
            ds[tag] = _emptied(tag, element.VR)
            return
        values = list(_values(element))
        fresh = [
            v if not v or v.startswith(_STANDARD_UID_ROOT) else new_uid(self.profile.key, v)
            for v in values
        ]
        ds[tag].value = fresh if element.VM > 1 else (fresh[0] if fresh else "")


_TEXT_VRS = frozenset(
    [
        "AE",
        "AS",
        "CS",
        "DA",
        "DS",
        "DT",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "ST",
        "TM",
        "UC",
        "UI",
        "UR",
        "UT",
    ]
)


def _emptied(tag: BaseTag, vr: str) -> DataElement:
    """The element with a zero-length value (action Z)."""
    return DataElement(tag, vr, Sequence() if vr == "SQ" else ("" if vr in _TEXT_VRS else None))


def _values(element: DataElement) -> Iterator[str]:
    if element.value is None:
        return
    if element.VM > 1:
        yield from (str(v) for v in element.value)
    else:
        yield str(element.value)


def _shifted(text: str, vr: str, shift: timedelta) -> str:
    if len(text) < 8 or not text[:8].isdigit():
        return ""
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:8])) - shift
    except ValueError:
        return ""
    return moved.strftime("%Y%m%d") + (text[8:] if vr == "DT" else "")


# Dummy values (action D) per VR: plainly not the patient's, valid for the VR.
_DUMMIES: dict[str, object] = {
    "AE": "ANONYMOUS",
    "AS": "000D",
    "CS": "ANONYMIZED",
    "DS": "0",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UR": "http://anonymized.invalid/",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "AT": None,
}


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item
