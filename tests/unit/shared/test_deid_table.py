"""Every attribute of PS3.15 table E.1-1, one by one, at the top level and nested in a sequence:
what the basic profile's action code allows is what comes out, and the original value never does.

Before the table was applied whole, MedicalAlerts, Allergies, the patient's telephone and
e-mail, PerformedLocation, Person Name in content items, icon images and overlays went out as
they were (finding 10)."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from shared.deid import OVERRIDES, REPEATING, TABLE, Profile, action_of, deidentify, pseudonym

PROFILE = Profile(key=b"table-test-key-0123456789abcdef")
ORIGINAL_UID = "1.2.3.4.999.17"
HOLDER = Tag(0x0008, 0x2218)  # Anatomic Region Sequence: not in the table, so only walked into
SECRET = "SECRETVALUE"


def _entries() -> list[tuple[BaseTag, str]]:
    found = dict(TABLE)
    for group, element, group_mask, element_mask, code in REPEATING:
        for instance in (group, group + 2) if group_mask == 0xFF00 else (group,):
            found.setdefault(Tag(instance, element if element_mask else 0x0010), code)
    return sorted(found.items())


def _vr(tag: BaseTag) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "LO"  # newer than pydicom's dictionary
    return vr.split(" or ")[0]


def _value(vr: str) -> Any:
    if vr == "SQ":
        item = Dataset()
        item.PersonName = "Secret^Person"
        item.ReferencedSOPInstanceUID = ORIGINAL_UID
        return Sequence([item])
    samples = {
        "DA": "20240301",
        "TM": "101500",
        "DT": "20240301101500",
        "UI": ORIGINAL_UID,
        "AS": "034Y",
        "DS": "7.5",
        "IS": "7",
        "CS": "SECRETVALUE",
        "AE": "SECRETVALUE",
        "PN": "Secret^Value",
        "AT": Tag(0x0010, 0x0010),
        "UR": "http://secret.example/",
    }
    if vr in samples:
        return samples[vr]
    if vr in ("FL", "FD"):
        return 7.5
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return 7
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return b"SECRETVALUE\x00"
    return SECRET


def _outcome(ds: Dataset, tag: BaseTag, original: Any) -> str:
    """removed, emptied, changed or kept."""
    if tag not in ds:
        return "removed"
    value = ds[tag].value
    if value in (None, "", b"") or (isinstance(value, Sequence) and len(value) == 0):
        return "emptied"
    if isinstance(value, Sequence):
        text = str(value)
        return "kept" if "Secret" in text or ORIGINAL_UID in text else "changed"
    return "kept" if value == original else "changed"


ALLOWED = {
    "X": {"removed"},
    "Z": {"emptied"},
    "D": {"changed"},
    "U": {"changed"},
    "K": {"kept"},
    "X/Z": {"removed", "emptied"},
    "X/D": {"removed", "changed"},
    "Z/D": {"emptied", "changed"},
    "X/Z/D": {"removed", "emptied", "changed"},
    "X/Z/U*": {"removed", "emptied", "changed"},
}


def _check(tag: BaseTag, code: str, nested: bool) -> None:
    vr = _vr(tag)
    original = _value(vr)
    ds = Dataset()
    ds.SOPInstanceUID, ds.PatientID = "1.2.3.4.5", "PID-1"
    target = ds
    if nested:
        target = Dataset()
        ds.add(DataElement(HOLDER, "SQ", Sequence([target])))
    if nested or tag not in ds:
        target.add(DataElement(tag, vr, original))
    out = deidentify(ds, PROFILE)
    where = out[HOLDER].value[0] if nested else out
    outcome = _outcome(where, tag, original)
    allowed = set(ALLOWED[code])
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") and code == "D":
        allowed.add("emptied")  # a dummy of binary data is no data
    assert outcome in allowed, f"{tag} {keyword_for_tag(tag)} ({code}, {vr}): {outcome}"
    if code != "K":
        assert SECRET not in str(where.get(tag, "")), f"{tag} kept its value"
    if code == "U" and outcome == "changed":
        assert str(where[tag].value).startswith("2.25."), tag


TABLE_ENTRIES = [(tag, OVERRIDES.get(tag, code)) for tag, code in _entries()]


def test_the_table_is_the_whole_standard_table() -> None:
    """Several hundred attributes, every action code of the basic profile column."""
    codes = {code for _, code in TABLE_ENTRIES}
    assert len(TABLE_ENTRIES) > 600
    assert {"X", "Z", "D", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"} <= codes
    for keyword in (
        "MedicalAlerts",
        "Allergies",
        "PatientTelephoneNumbers",
        "PatientTelecomInformation",
        "PerformedLocation",
        "PersonName",
        "ContentSequence",
        "IconImageSequence",
    ):
        tag = next(t for t, _ in TABLE_ENTRIES if keyword_for_tag(t) == keyword)
        assert action_of(tag) is not None, keyword
    assert action_of(Tag(0x6002, 0x3000)) == "X" and action_of(Tag(0x6000, 0x4000)) == "X"


# File meta and command attributes never sit in a data set; the patient's name and ID become the
# pseudonym at the top level (test_patient_gets_one_pseudonym).
_IN_DATA_SETS = [(t, c) for t, c in TABLE_ENTRIES if t.group not in (0x0000, 0x0002)]
_PATIENT = (Tag(0x0010, 0x0020), Tag(0x0010, 0x0010))


@pytest.mark.parametrize(
    ("tag", "code"), [(t, c) for t, c in _IN_DATA_SETS if t not in _PATIENT], ids=str
)
def test_each_attribute_gets_its_action(tag: BaseTag, code: str) -> None:
    _check(tag, code, nested=False)


@pytest.mark.parametrize(
    ("tag", "code"), [(t, c) for t, c in _IN_DATA_SETS if t != HOLDER], ids=str
)
def test_each_attribute_gets_its_action_inside_a_sequence(tag: BaseTag, code: str) -> None:
    if tag in _PATIENT:
        code = "D"  # nested, a patient's name or ID is replaced by a dummy
    _check(tag, code, nested=True)


def test_patient_gets_one_pseudonym() -> None:
    ds = Dataset()
    ds.PatientID, ds.PatientName, ds.SOPInstanceUID = "RAMPUR-0042", "Devi^Sita", "1.2.3"
    out = deidentify(ds, PROFILE)
    assert out.PatientID == out.PatientName == pseudonym(PROFILE.key, "RAMPUR-0042")


def test_whole_overlays_and_icons_go() -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 8)
    ds.add_new(0x60024000, "LT", "Sita Devi")
    icon = Dataset()
    icon.Rows = icon.Columns = 2
    icon.PixelData = b"\x00" * 4
    ds.IconImageSequence = Sequence([icon])
    out = deidentify(ds, PROFILE)
    assert not [e for e in out if 0x6000 <= e.tag.group <= 0x60FF]
    assert "IconImageSequence" not in out
