"""The C-STORE handler maps every outcome to a DICOM status and never raises."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from dicom_bridge.handlers import handle_echo, handle_store
from dicom_bridge.spool import Spool
from tests.unit.dicom_bridge.bridge_support import dataset_bytes


def _event(uid: Any, data: bytes | Exception) -> Any:
    """A C-STORE event as pynetdicom hands it over: the file meta, and the data set in a BytesIO."""
    is_part10 = isinstance(data, bytes) and data[128:132] == b"DICM"
    meta = dcmread(io.BytesIO(data)).file_meta if is_part10 else _meta()

    class Request:
        AffectedSOPInstanceUID = uid

        @property
        def DataSet(self) -> io.BytesIO:  # noqa: N802 (pynetdicom's naming)
            if isinstance(data, Exception):
                raise data
            return io.BytesIO(dataset_bytes(data) if is_part10 else data)

    return SimpleNamespace(request=Request(), file_meta=meta)


def _meta() -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, "1.2.3"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


class _FullDisk(Spool):
    def put(self, data: Any, sop_instance_uid: str | None = None) -> Path:
        raise OSError(28, "No space left on device")


def test_store_success_spools_and_wakes_the_forwarder(tmp_path: Path, ct_files: list[Path]) -> None:
    spool, wake = Spool(tmp_path), threading.Event()
    data = ct_files[0].read_bytes()

    status = handle_store(_event(ct_files[0].stem, data), spool, wake)

    assert status == 0x0000
    assert wake.is_set()
    assert spool.path_for(ct_files[0].stem).read_bytes() == data


def test_store_answers_out_of_resources_when_the_disk_fails(tmp_path: Path) -> None:
    assert handle_store(_event("1.2.3", b"data"), _FullDisk(tmp_path)) == 0xA700


def test_store_answers_cannot_understand_for_a_bad_uid(tmp_path: Path) -> None:
    wake = threading.Event()
    assert handle_store(_event("../../etc/passwd", b"data"), Spool(tmp_path), wake) == 0xC210
    assert handle_store(_event(None, b""), Spool(tmp_path), wake) == 0xC210
    assert not wake.is_set()


def test_store_never_lets_an_exception_escape(tmp_path: Path) -> None:
    status = handle_store(_event("1.2.3", RuntimeError("boom")), Spool(tmp_path))
    assert status & 0xF000 == 0xC000


def test_echo_succeeds() -> None:
    assert handle_echo(SimpleNamespace()) == 0x0000
