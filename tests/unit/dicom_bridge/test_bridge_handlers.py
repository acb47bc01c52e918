"""A C-STORE is spooled fragment by fragment; every outcome is a DICOM status, never an exception,
and nothing half written is ever left in the spool."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicom_bridge.handlers import StoredInstance, part10_header
from dicom_bridge.spool import Spool, SpoolWriter
from tests.unit.dicom_bridge.bridge_support import dataset_bytes


def _store(
    spool: Spool, uid: str, data: bytes, wake: threading.Event | None = None, pieces: int = 3
) -> int:
    instance = StoredInstance(
        spool, CTImageStorage, uid, ExplicitVRLittleEndian, "MODALITY", wake=wake
    )
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        instance.write(memoryview(data)[start : start + step])
    return instance.finish()


class _FullDisk(Spool):
    def begin(self, sop_instance_uid: str) -> SpoolWriter:
        writer = super().begin(sop_instance_uid)

        def write(data: bytes | memoryview) -> None:
            raise OSError(28, "No space left on device")

        writer.write = write  # type: ignore[method-assign]
        return writer


def test_fragments_become_the_received_instance_as_part10(
    tmp_path: Path, ct_files: list[Path]
) -> None:
    spool, wake = Spool(tmp_path), threading.Event()
    original = ct_files[0].read_bytes()

    status = _store(spool, ct_files[0].stem, dataset_bytes(original), wake)

    assert status == 0x0000
    assert wake.is_set()
    spooled = spool.path_for(ct_files[0].stem).read_bytes()
    assert dataset_bytes(spooled) == dataset_bytes(original)
    meta = dcmread(spool.path_for(ct_files[0].stem)).file_meta
    assert meta.MediaStorageSOPInstanceUID == ct_files[0].stem
    assert meta.MediaStorageSOPClassUID == CTImageStorage
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert meta.SourceApplicationEntityTitle == "MODALITY"


def test_the_file_meta_is_what_pydicom_writes(tmp_path: Path) -> None:
    header = part10_header(CTImageStorage, "1.2.3.4", ExplicitVRLittleEndian, "CT1")
    (tmp_path / "x.dcm").write_bytes(header)
    meta = dcmread(tmp_path / "x.dcm", force=True).file_meta
    assert meta.FileMetaInformationGroupLength == len(header) - 132 - 12
    assert meta.FileMetaInformationVersion == b"\x00\x01"
    assert (meta.MediaStorageSOPInstanceUID, meta.SourceApplicationEntityTitle) == (
        "1.2.3.4",
        "CT1",
    )


def test_out_of_resources_when_the_disk_fails_and_nothing_is_left(tmp_path: Path) -> None:
    spool = _FullDisk(tmp_path)
    assert _store(spool, "1.2.3", b"data" * 100) == 0xA700
    assert spool.count() == 0
    assert not any(spool.tmp_dir.iterdir())


def test_cannot_understand_for_a_bad_or_missing_uid(tmp_path: Path) -> None:
    spool, wake = Spool(tmp_path), threading.Event()
    assert _store(spool, "../../etc/passwd", b"data", wake) == 0xC210
    assert _store(spool, "", b"data", wake) == 0xC210
    assert _store(spool, "1.2.3", b"", wake) == 0xC210  # no data set at all
    assert not wake.is_set()
    assert spool.count() == 0


def test_an_abandoned_instance_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    instance = StoredInstance(spool, CTImageStorage, "1.2.3", ExplicitVRLittleEndian, "MODALITY")
    instance.write(b"half of it")
    instance.abandon()

    assert spool.count() == 0
    assert not spool.path_for("1.2.3").exists()
    assert not any(spool.tmp_dir.iterdir())


def test_the_same_instance_twice_keeps_the_first(tmp_path: Path, ct_files: list[Path]) -> None:
    spool, uid = Spool(tmp_path), ct_files[0].stem
    data = dataset_bytes(ct_files[0].read_bytes())
    assert _store(spool, uid, data) == 0x0000
    first = spool.path_for(uid).read_bytes()

    assert _store(spool, uid, data[:-2] + b"XX") == 0x0000  # success: the modality must move on

    assert spool.path_for(uid).read_bytes() == first
    assert spool.count() == 1


@pytest.mark.parametrize(
    ("syntax", "data", "problem"),
    [
        (ExplicitVRLittleEndian, os.urandom(4096), "not a DICOM data set"),
        (
            ImplicitVRLittleEndian,
            b"\x10\x00\x10\x00\xff\xff\xff\x7f" + bytes(100),
            "runs past the end",
        ),
        (
            ExplicitVRLittleEndian,
            b"\x08\x00\x16\x00UI\x02\x001\x00\x08\x00\x05\x00CS\x00\x00",
            "out of order",
        ),
        (ExplicitVRLittleEndian, b"\x10\x00\x10\x00PN\x04\x00A^B ", "no SOPInstanceUID"),
        (
            ExplicitVRLittleEndian,
            b"\x08\x00\x18\x00UI\x06\x009.9.9\x00",
            "not the one in the request",
        ),
    ],
    ids=[
        "random bytes",
        "length past the end",
        "out of order",
        "no SOPInstanceUID",
        "another SOPInstanceUID",
    ],
)
def test_what_the_hub_would_refuse_is_refused_at_once(
    tmp_path: Path, syntax: str, data: bytes, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    instance = StoredInstance(spool, CTImageStorage, "1.2.3", syntax, "MODALITY")
    instance.write(data)

    assert instance.finish() == 0xC210
    assert problem in caplog.text
    assert spool.count() == 0


def test_what_cannot_be_read_quickly_is_left_to_the_hub(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for syntax in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian):
        instance = StoredInstance(spool, CTImageStorage, f"1.2.{len(syntax)}", syntax, "MODALITY")
        instance.write(os.urandom(256))
        assert instance.finish() == 0x0000
    assert spool.count() == 2
