"""De-identification (PS3.15 Annex E basic profile) as a pure function over pydicom datasets."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from shared.deid import BurnedInAnnotation, Profile, deidentify, new_uid, pseudonym
from tests.dicomgen import make_ct_series, make_us_cine

KEY = b"clinic-secret-0123456789"
PROFILE = Profile(key=KEY)
UID_2_25 = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")


def _ct() -> Dataset:
    ds = make_ct_series(
        1,
        rows=8,
        cols=8,
        accession_number="ACC-D-1",
        patient_id="RAMPUR-0042",
        patient_name="Devi^Sita",
    )[0]
    ds.InstitutionName, ds.StationName, ds.OperatorsName = "PHC Rampur", "CT-1", "Tech^One"
    ds.StudyDescription, ds.SeriesDescription = "CT wrist of Sita Devi", "axial"
    ds.OtherPatientIDs, ds.PatientAge, ds.PatientAddress = "AADHAAR-1234", "034Y", "Ward 4, Rampur"
    ds.SeriesDate = ds.AcquisitionDate = "20240301"
    ds.add_new(0x00091010, "LO", "vendor secret with the name Sita Devi")  # private
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5.6"
    ds.ReferencedImageSequence = Sequence([ref])
    return ds


def test_patient_identifiers_are_replaced_removed_or_emptied() -> None:
    original = _ct()

    out = deidentify(original, PROFILE)

    assert "RAMPUR-0042" not in str(out) and "Sita" not in str(out) and "Rampur" not in str(out)
    assert str(out.PatientID) == str(out.PatientName) == pseudonym(KEY, "RAMPUR-0042")
    for emptied in (
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyID",
        "StudyDate",
        "StudyTime",
        "InstitutionName",  # X/Z/D: emptied
        "StationName",
        "OperatorsName",
    ):
        assert emptied in out and out[emptied].value in ("", None), emptied
    for removed in (
        "StudyDescription",
        "SeriesDescription",
        "OtherPatientIDs",
        "PatientAge",
        "PatientAddress",
        "SeriesDate",
    ):
        assert removed not in out, removed
    assert out["AcquisitionDate"].value in ("", None)  # X/Z: emptied
    assert out.PatientIdentityRemoved == "YES" and "Basic Application" in out.DeidentificationMethod
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert not any(element.tag.is_private for element in out.iterall())
    assert original.PatientID == "RAMPUR-0042" and "InstitutionName" in original  # input untouched


def test_uids_are_replaced_consistently_and_standard_uids_kept() -> None:
    a, b = make_ct_series(2, rows=8, cols=8)

    out_a, out_b = deidentify(a, PROFILE), deidentify(b, PROFILE)

    for keyword in (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "FrameOfReferenceUID",
    ):
        assert (
            UID_2_25.match(str(out_a[keyword].value)) and out_a[keyword].value != a[keyword].value
        )
    assert (
        out_a.StudyInstanceUID == out_b.StudyInstanceUID
        and out_a.SeriesInstanceUID == out_b.SeriesInstanceUID
    )
    assert out_a.SOPInstanceUID != out_b.SOPInstanceUID
    assert out_a.file_meta.MediaStorageSOPInstanceUID == out_a.SOPInstanceUID
    assert (
        out_a.SOPClassUID == a.SOPClassUID
        and out_a.file_meta.TransferSyntaxUID == a.file_meta.TransferSyntaxUID
    )
    assert (
        deidentify(a, PROFILE).SOPInstanceUID == out_a.SOPInstanceUID
    )  # re-sending maps to the same UID
    assert deidentify(a, Profile(key=b"another clinic")).SOPInstanceUID != out_a.SOPInstanceUID


def test_nested_references_follow_the_same_mapping() -> None:
    out = deidentify(_ct(), PROFILE)

    ref = out.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == new_uid(KEY, "1.2.3.4.5.6")
    assert ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"


def test_pixels_survive_and_the_result_encodes_as_part10() -> None:
    original = _ct()
    out = deidentify(original, PROFILE)

    buffer = io.BytesIO()
    out.save_as(buffer, enforce_file_format=True)
    back = dcmread(io.BytesIO(buffer.getvalue()))

    assert back.PixelData == original.PixelData and back.SOPInstanceUID == out.SOPInstanceUID


def test_modified_dates_option_shifts_by_a_stable_per_patient_offset() -> None:
    original = _ct()
    original.StudyDate, original.SeriesDate = "20240310", "20240301"

    out = deidentify(original, Profile(key=KEY, shift_dates=True))
    again = deidentify(original, Profile(key=KEY, shift_dates=True))

    assert out.StudyDate != "20240310" and out.StudyDate == again.StudyDate
    assert int(out.StudyDate) > int(out.SeriesDate)  # the interval between dates survives
    assert out.PatientBirthDate == "" and out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert out.DeidentificationMethodCodeSequence[1].CodeValue == "113107"


def test_burned_in_annotation_is_refused_unless_allowed() -> None:
    us = make_us_cine(frames=1, rows=8, cols=8)
    us.BurnedInAnnotation = "YES"

    with pytest.raises(BurnedInAnnotation, match="BurnedInAnnotation=YES"):
        deidentify(us, PROFILE)
    assert deidentify(us, Profile(key=KEY, allow_burned_in=True)).PatientIdentityRemoved == "YES"
    us.BurnedInAnnotation = "NO"
    assert deidentify(us, PROFILE).PatientIdentityRemoved == "YES"


@settings(max_examples=60, deadline=None)
@given(
    st.from_regex(r"[1-9][0-9]{0,5}(\.(0|[1-9][0-9]{0,9})){1,8}", fullmatch=True),
    st.binary(min_size=1, max_size=32),
)
def test_new_uid_is_a_valid_stable_2_25_uid(uid: str, key: bytes) -> None:
    fresh = new_uid(key, uid)

    assert UID_2_25.match(fresh) and len(fresh) <= 64
    assert new_uid(key, uid) == fresh and new_uid(key, uid + ".1") != fresh


@settings(max_examples=40, deadline=None)
@given(
    patient_id=st.text(min_size=1, max_size=64).filter(lambda t: "\\" not in t and t.strip() == t),
    name=st.text(
        alphabet=st.characters(min_codepoint=65, max_codepoint=122), min_size=3, max_size=30
    ),
)
def test_no_original_patient_id_or_name_survives(patient_id: str, name: str) -> None:
    ds = make_ct_series(1, rows=4, cols=4, patient_id=patient_id, patient_name=name)[0]

    out = deidentify(ds, PROFILE)

    assert str(out.PatientID) == pseudonym(KEY, patient_id) != patient_id
    assert str(out.PatientName) != name
