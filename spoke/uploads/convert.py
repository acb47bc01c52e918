"""One uploaded file as one DICOM instance, judged by its content (not its name).

Photos (JPEG/PNG) become DICOM Secondary Capture and PDFs DICOM Encapsulated PDF (PatientID =
the case's patient pseudonym, AccessionNumber = the case's accession number, a new study per
upload batch); DICOM files are taken as they are once their UIDs are well formed. Pure: no
Flask, no disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any

import pydicom
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from shared.dicom import is_valid_uid
from shared.errors import TeleconsultError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PHOTO_PIXELS = 60_000_000  # about 180 MB once uncompressed: larger photos are refused
MAX_FILES = 20
MAX_REQUEST_BYTES = MAX_FILES * MAX_FILE_BYTES + 1024 * 1024

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
KINDS = {"dicom": "DICOM", "photo": "photo", "pdf": "PDF report"}


class UploadRefused(TeleconsultError):
    """A file the spoke does not accept (its type, its size, its content)."""


# -- turning one uploaded file into one DICOM instance ------------------------------------------


@dataclass
class Instance:
    sop_uid: str
    sop_class: str
    kind: str
    name: str
    data: bytes


@dataclass
class Batch:
    """What one upload shares: the case's patient and accession number, a new study."""

    case: dict[str, Any]
    study_uid: str
    now: datetime
    photo_series: str
    document_series: str
    number: int = 0


def new_batch(case: dict[str, Any], now: datetime) -> Batch:
    return Batch(case, generate_uid(), now, generate_uid(), generate_uid())


def sniff(head: bytes) -> str | None:
    """The kind of a file by its first bytes: dicom, photo, pdf or None."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "photo"
    if head.lstrip(b"\xef\xbb\xbf\r\n\t ")[:5] == b"%PDF-":
        return "pdf"
    return None


def convert(name: str, data: bytes, batch: Batch) -> Instance:
    """One uploaded file as a DICOM instance; ``UploadRefused`` says in words why not."""
    if not data:
        raise UploadRefused(f"{name}: the file is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise UploadRefused(
            f"{name}: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB."
        )
    kind = sniff(data[:1024])
    if kind is None:
        raise UploadRefused(
            f"{name}: not a DICOM file, JPEG or PNG photo, or PDF report "
            "(the content was checked, not only the name)."
        )
    batch.number += 1
    if kind == "dicom":
        return _dicom(name, data)
    if kind == "photo":
        return _photo(name, data, batch)
    return _pdf(name, data, batch)


def _dicom(name: str, data: bytes) -> Instance:
    try:
        ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # InvalidDicomError, and pydicom raises many types on damaged input
        raise UploadRefused(
            f"{name}: not a readable DICOM file ({exc.__class__.__name__})."
        ) from None
    sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    if not sop_uid:
        raise UploadRefused(f"{name}: the DICOM file has no SOPInstanceUID.")
    for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = str(ds.get(keyword, "") or "")
        if not value:
            raise UploadRefused(f"{name}: the DICOM file has no {keyword}.")
        if not is_valid_uid(value):
            raise UploadRefused(
                f"{name}: the DICOM file's {keyword} is not a valid UID (digits and dots)."
            )
    return Instance(sop_uid, str(ds.SOPClassUID), "dicom", name, data)


def _photo(name: str, data: bytes, batch: Batch) -> Instance:
    try:
        with Image.open(BytesIO(data)) as probe:
            probe.verify()
        with Image.open(BytesIO(data)) as opened:
            if opened.format not in ("JPEG", "PNG"):
                raise UploadRefused(f"{name}: only JPEG and PNG photos are taken.")
            if opened.width * opened.height > MAX_PHOTO_PIXELS:
                raise UploadRefused(
                    f"{name}: the photo has more than {MAX_PHOTO_PIXELS // 1_000_000} megapixels; "
                    "send a smaller one."
                )
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except UploadRefused:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        raise UploadRefused(
            f"{name}: the photo cannot be read ({exc.__class__.__name__})."
        ) from None
    ds = _base(batch, SECONDARY_CAPTURE, batch.photo_series, "XC")
    ds.ConversionType = "DI"
    ds.ImageComments = f"Uploaded file: {name}"
    ds.SeriesDescription = "Photos from the clinic"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = image.height, image.width
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "01" if data.startswith(b"\xff\xd8") else "00"
    ds.PixelData = image.tobytes()
    return Instance(ds.SOPInstanceUID, SECONDARY_CAPTURE, "photo", name, _encode(ds))


def _pdf(name: str, data: bytes, batch: Batch) -> Instance:
    if b"%%EOF" not in data[-2048:]:
        raise UploadRefused(f"{name}: the PDF is incomplete (no end-of-file marker).")
    ds = _base(batch, ENCAPSULATED_PDF, batch.document_series, "DOC")
    ds.ConversionType = "WSD"
    ds.SeriesDescription = "Reports from the clinic"
    ds.DocumentTitle = name[:64]
    ds.ConceptNameCodeSequence = []
    ds.BurnedInAnnotation = "YES"
    ds.AcquisitionDateTime = batch.now.strftime("%Y%m%d%H%M%S")
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = data + (b"\x00" if len(data) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(data)
    return Instance(ds.SOPInstanceUID, ENCAPSULATED_PDF, "pdf", name, _encode(ds))


def _base(batch: Batch, sop_class: str, series_uid: str, modality: str) -> Dataset:
    case, now = batch.case, batch.now
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    patient = case.get("patient") or {}
    ds.PatientID = str(patient.get("pseudonym") or "")[:64]
    ds.PatientName = str(patient.get("pseudonym") or "")[:64]
    ds.PatientBirthDate = ""
    ds.PatientSex = {"male": "M", "female": "F"}.get(str(patient.get("sex") or ""), "O")
    if isinstance(patient.get("age"), int) and 0 <= patient["age"] < 1000:
        ds.PatientAge = f"{patient['age']:03d}Y"
    ds.AccessionNumber = str(case.get("accession_number") or "")[:16]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = batch.study_uid, series_uid
    ds.StudyID = "1"
    ds.StudyDescription = "Uploaded at the clinic"
    ds.ReferringPhysicianName = ""
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.Modality = modality
    ds.SeriesNumber = 1 if modality == "XC" else 2
    ds.InstanceNumber = batch.number
    ds.Manufacturer = "Teleconsult spoke"
    return ds


def _encode(ds: Dataset) -> bytes:
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
