"""Generate small, valid DICOM test data with pydicom (+ numpy): no files checked in, no network."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)


def _phantom(rows: int, cols: int, slice_index: int, n_slices: int) -> np.ndarray:
    """Return a CT slice (stored values, intercept -1024) of a water sphere in air."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    z = (slice_index + 0.5) / n_slices - 0.5
    r2 = ((x - cols / 2) / (cols / 2.5)) ** 2 + ((y - rows / 2) / (rows / 2.5)) ** 2 + (2 * z) ** 2
    hu = np.where(r2 < 1.0, 40.0 + 20.0 * np.cos(x / 3.0), -1000.0)
    return (hu + 1024.0).clip(0, 4095).astype(np.uint16)


def _file_meta(sop_instance_uid: UID, sop_class: str = CTImageStorage) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _ct_slice(common: Dataset, index: int, n_slices: int, rows: int, cols: int) -> Dataset:
    ds = Dataset()
    ds.update(common)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta = _file_meta(ds.SOPInstanceUID)
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-cols / 2.0, -rows / 2.0, float(index) * 2.5]
    ds.SliceLocation = float(index) * 2.5
    ds.Rows, ds.Columns = rows, cols
    ds.PixelData = _phantom(rows, cols, index, n_slices).tobytes()
    return ds


def _series_attributes(accession_number: str, patient_id: str, patient_name: str) -> Dataset:
    now = dt.datetime.now()
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientName, ds.PatientID = patient_name, patient_id
    ds.PatientBirthDate, ds.PatientSex = "19800101", "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber, ds.StudyID, ds.SeriesNumber = accession_number, "1", 1
    ds.ReferringPhysicianName, ds.Modality, ds.Manufacturer = "", "CT", "Teleconsult test data"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness, ds.KVP = [1.0, 1.0], 2.5, 120
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    return ds


def make_ct_series(
    n_slices: int,
    rows: int = 64,
    cols: int = 64,
    accession_number: str = "ACC0001",
    patient_id: str = "PSEUDO-0001",
    patient_name: str = "TEST^PATIENT",
) -> list[Dataset]:
    """Return one CT series of ``n_slices`` 16-bit slices (Explicit VR Little Endian, new UIDs)."""
    common = _series_attributes(accession_number, patient_id, patient_name)
    return [_ct_slice(common, i, n_slices, rows, cols) for i in range(n_slices)]


def _patient_study(ds: Dataset, accession_number: str, patient_id: str, patient_name: str) -> None:
    now = dt.datetime.now()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID = patient_name, patient_id
    ds.PatientBirthDate, ds.PatientSex = "19800101", "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = accession_number, "1", 1, 1
    ds.ReferringPhysicianName, ds.Manufacturer = "", "Teleconsult test data"


def make_dx(
    accession_number: str = "ACC0002",
    patient_id: str = "PSEUDO-0002",
    rows: int = 128,
    cols: int = 96,
    patient_name: str = "TEST^DX",
) -> Dataset:
    """Return a DX image "for presentation", MONOCHROME1 (white = low values), 12 bits in 16."""
    ds = Dataset()
    _patient_study(ds, accession_number, patient_id, patient_name)
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.file_meta = _file_meta(ds.SOPInstanceUID, ds.SOPClassUID)
    ds.Modality, ds.PresentationIntentType, ds.ImageType = (
        "DX",
        "FOR PRESENTATION",
        ["ORIGINAL", "PRIMARY"],
    )
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.Rows, ds.Columns, ds.PixelSpacing = rows, cols, [0.2, 0.2]
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    y, x = np.mgrid[0:rows, 0:cols]
    bone = (np.abs(x - cols / 2) < cols / 8) & (np.abs(y - rows / 2) < rows / 3)
    ds.PixelData = np.where(bone, 400, 3600).astype(np.uint16).tobytes()
    return ds


def make_us_cine(
    frames: int = 8,
    rows: int = 48,
    cols: int = 64,
    accession_number: str = "ACC0003",
    patient_id: str = "PSEUDO-0003",
    patient_name: str = "TEST^US",
) -> Dataset:
    """Return a multi-frame ultrasound cine loop in RGB, 8 bits per sample."""
    ds = Dataset()
    _patient_study(ds, accession_number, patient_id, patient_name)
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.file_meta = _file_meta(ds.SOPInstanceUID, ds.SOPClassUID)
    ds.Modality, ds.ImageType = "US", ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.FrameTime, ds.CineRate = 40.0, 25
    ds.FrameIncrementPointer = (0x0018, 0x1063)
    cine = np.zeros((frames, rows, cols, 3), dtype=np.uint8)
    for f in range(frames):  # a bright dot moving across a dark sector, one frame apart
        cine[f, rows // 2 - 3 : rows // 2 + 3, (f * 5) % cols : (f * 5) % cols + 6, :] = (
            250,
            200,
            20 * f % 256,
        )
        cine[f, :, :, 2] += np.uint8(f)
    ds.PixelData = cine.tobytes()
    return ds


def compressed(ds: Dataset, transfer_syntax: str) -> Dataset:
    """Return ``ds`` re-encoded in a compressed ``transfer_syntax`` (RLE, JPEG-LS, JPEG 2000)."""
    out = copy.deepcopy(ds)
    out.compress(transfer_syntax)
    return out


def write_series(datasets: Iterable[Dataset], directory: str | Path) -> list[Path]:
    """Write ``datasets`` as DICOM Part 10 files ``<SOPInstanceUID>.dcm`` in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = directory / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def dataset_bytes(data: bytes) -> bytes:
    """The bytes after the preamble, DICM prefix and file meta group of a Part 10 file."""
    assert data[128:132] == b"DICM"
    assert data[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) group length, explicit VR UL
    group_length = int.from_bytes(data[140:144], "little")
    return data[144 + group_length :]


PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def make_pdf_report(
    accession_number: str, patient_id: str = "PT-0001", data: bytes = PDF_BYTES
) -> Dataset:
    """A PDF report wrapped as DICOM Encapsulated PDF, as the clinic's upload page makes it."""
    sop_class = "1.2.840.10008.5.1.4.1.1.104.1"
    ds = Dataset()
    ds.file_meta = _file_meta(generate_uid(), sop_class)
    _patient_study(ds, accession_number, patient_id, patient_id)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DOC", 9, 1
    ds.SeriesDescription = "Discharge summary (PDF)"
    ds.BurnedInAnnotation = "YES"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = data + (b"\x00" if len(data) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(data)
    return ds
