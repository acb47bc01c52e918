"""The forwarder's quick AccessionNumber reader says what pydicom says, or leaves it to pydicom."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from dicom_bridge.linking import accession_number, scan_accession_number
from tests.dicomgen import compressed, make_ct_series, make_dx, make_us_cine, write_series


def _variants() -> dict[str, Dataset]:
    ct = make_ct_series(1, accession_number="ACC-CT-1")[0]
    implicit = make_ct_series(1, accession_number="ACC-IMPL")[0]
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    padded = make_dx(accession_number="A1 ")  # odd length: padded with a space
    missing = make_dx()
    del missing.AccessionNumber
    empty = make_dx(accession_number="")
    undefined_length_before = make_dx(accession_number="AFTER-SQ")
    undefined_length_before.ReferencedImageSequence = Sequence([Dataset()])  # (0008,1140) is after
    undefined_length_before.CodingSchemeIdentificationSequence = Sequence(
        [Dataset()]
    )  # (0008,0110)
    undefined_length_before.add_new(
        0x00080006, "SQ", Sequence([Dataset()])
    )  # Language Code Sequence
    undefined_length_before[0x00080006].is_undefined_length = True  # written with delimiters
    latin = make_dx(accession_number="ÄCC-1")
    latin.SpecificCharacterSet = "ISO_IR 100"
    deflated = make_dx(accession_number="ACC-DEFL")
    deflated.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    big = make_dx(accession_number="ACC-BIG")
    big.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    return {
        "ct": ct,
        "implicit": implicit,
        "padded": padded,
        "missing": missing,
        "empty": empty,
        "undefined length before": undefined_length_before,
        "latin-1": latin,
        "deflated": deflated,
        "big endian": big,
        "jpeg2000 us": compressed(
            make_us_cine(frames=3, accession_number="ACC-US"), JPEG2000Lossless
        ),
        "rle dx": compressed(make_dx(accession_number="ACC-RLE"), RLELossless),
    }


@pytest.mark.parametrize("name", list(_variants()))
def test_the_accession_number_is_what_pydicom_reads(tmp_path: Path, name: str) -> None:
    ds = _variants()[name]
    if ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian:
        ds.save_as(
            tmp_path / "x.dcm", little_endian=False, implicit_vr=False, enforce_file_format=True
        )
        (path,) = [tmp_path / "x.dcm"]
    else:
        (path,) = write_series([ds], tmp_path)

    expected = str(dcmread(path).get("AccessionNumber", "") or "").strip()

    assert accession_number(path) == expected


@pytest.mark.parametrize(
    ("name", "scanned"),
    [
        ("ct", True),
        ("implicit", True),
        ("missing", True),
        ("jpeg2000 us", True),
        ("deflated", False),
        ("latin-1", False),
        ("undefined length before", False),
    ],
)
def test_the_scan_answers_alone_only_when_sure(tmp_path: Path, name: str, scanned: bool) -> None:
    (path,) = write_series([_variants()[name]], tmp_path)

    assert (scan_accession_number(path.read_bytes()[:16384]) is not None) == scanned


def test_unreadable_files_have_no_accession_number(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)
    assert accession_number(junk) == ""
    assert accession_number(tmp_path / "missing.dcm") == ""
