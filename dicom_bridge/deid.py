"""De-identification before data leaves the clinic: the DICOM PS3.15 Annex E Basic Application
Level Confidentiality Profile (action table E.1-1) for the attributes clinic modalities write.

Pure functions over a pydicom ``Dataset``: no I/O, no settings. UIDs are replaced by
``2.25.<HMAC of the original>``, so re-sending an instance maps to the same new UIDs and a study,
series or frame of reference stays one. The key is the clinic's secret: without it nobody can
confirm a guessed original UID or patient ID by hashing it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

METHOD = "PS3.15 E.1 Basic Application Confidentiality Profile"
# PS3.16 CID 7050: the profile and the options applied.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
MODIFIED_DATES_CODE = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
# Well-known UIDs (SOP classes, transfer syntaxes, coding schemes) are the standard's, not the
# patient's.
_STANDARD_UID_ROOT = "1.2.840.10008."
_KEEP_UIDS = {
    "SOPClassUID",
    "ReferencedSOPClassUID",
    "MediaStorageSOPClassUID",
    "TransferSyntaxUID",
    "ImplementationClassUID",
    "CodingSchemeUID",
    "ReferencedSOPClassUIDInFile",
    "ReferencedTransferSyntaxUIDInFile",
    "ContextGroupExtensionCreatorUID",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Table E.1-1, action X (remove). Free text and identifiers of people, places and devices.
REMOVE = _words(
    "PatientAge PatientWeight PatientSize PatientAddress PatientBirthTime PatientBirthName "
    "PatientMotherBirthName PatientTelephoneNumbers PatientComments PatientState "
    "PatientReligiousPreference "
    "OtherPatientIDs OtherPatientNames OtherPatientIDsSequence MedicalRecordLocator EthnicGroup "
    "Occupation "
    "AdditionalPatientHistory AdmittingDiagnosesDescription MilitaryRank BranchOfService "
    "CountryOfResidence "
    "RegionOfResidence PregnancyStatus SmokingStatus PatientInsurancePlanCodeSequence "
    "ResponsiblePerson "
    "ResponsibleOrganization ReferringPhysicianAddress ReferringPhysicianTelephoneNumbers "
    "ReferringPhysicianIdentificationSequence PerformingPhysicianName "
    "PerformingPhysicianIdentificationSequence "
    "NameOfPhysiciansReadingStudy PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence "
    "RequestingPhysician "
    "OperatorsName OperatorIdentificationSequence InstitutionName InstitutionAddress "
    "InstitutionalDepartmentName "
    "InstitutionCodeSequence StationName DeviceSerialNumber StudyDescription SeriesDescription "
    "ImageComments "
    "ProtocolName DerivationDescription RequestAttributesSequence RequestedProcedureDescription "
    "RequestedProcedureID ScheduledProcedureStepDescription ScheduledProcedureStepID "
    "PerformedProcedureStepDescription PerformedProcedureStepID PerformedProcedureStepStartDate "
    "PerformedProcedureStepStartTime PerformedProcedureStepEndDate PerformedProcedureStepEndTime "
    "ReferencedPatientSequence ReferencedStudySequence ReferencedPerformedProcedureStepSequence "
    "AdmissionID IssuerOfAdmissionID ServiceEpisodeID ServiceEpisodeDescription VisitComments "
    "CurrentPatientLocation PatientInstitutionResidence InterpretationRecorder "
    "InterpretationAuthor "
    "TextComments TextString ContrastBolusAgent ImagePathFilterTypeStackCodeSequence "
    "AcquisitionComments ReasonForStudy RequestedContrastAgent StudyComments IssuerOfPatientID "
    "PatientSexNeutered PatientSpeciesDescription PatientBreedDescription RequestingService "
    "IdentifyingComments ModifiedAttributesSequence OriginalAttributesSequence "
    "DigitalSignaturesSequence"
)
# Action Z (zero length): type 2 attributes that must stay present.
EMPTY = _words(
    "PatientBirthDate PatientSex AccessionNumber StudyID ReferringPhysicianName ContentCreatorName "
    "FillerOrderNumberImagingServiceRequest PlacerOrderNumberImagingServiceRequest"
)
# Dates and times: emptied (Z) or removed (X), or shifted with the Modified Dates option.
EMPTY_DATES = _words("StudyDate StudyTime ContentDate ContentTime")
REMOVE_DATES = _words(
    "SeriesDate SeriesTime AcquisitionDate AcquisitionTime AcquisitionDateTime "
    "InstanceCreationDate "
    "InstanceCreationTime OverlayDate OverlayTime CurveDate CurveTime DateOfLastCalibration "
    "TimeOfLastCalibration "
    "ScheduledProcedureStepStartDate ScheduledProcedureStepStartTime ScheduledProcedureStepEndDate "
    "ScheduledProcedureStepEndTime"
)


class BurnedInAnnotation(ValueError):
    """The image says its pixels show text (e.g. the patient's name): the profile cannot clean
    it."""


@dataclass(frozen=True)
class Profile:
    """How to de-identify: the clinic's secret ``key``, and the options the clinic chose."""

    key: bytes
    # Retain Longitudinal Temporal Information with Modified Dates: shift by a per-patient offset.
    shift_dates: bool = False
    allow_burned_in: bool = False


def new_uid(key: bytes, uid: str) -> str:
    """The replacement of ``uid``: ``2.25.`` and 128 bits of HMAC-SHA256 (PS3.5 B.2), stable per
    key."""
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
    shift = date_offset(profile.key, patient_id) if profile.shift_dates else None
    out.remove_private_tags()
    _walk(out, profile, shift)
    out.PatientID = pseudonym(profile.key, patient_id)
    out.PatientName = out.PatientID
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = METHOD
    codes = [BASIC_PROFILE_CODE] + ([MODIFIED_DATES_CODE] if shift is not None else [])
    out.DeidentificationMethodCodeSequence = Sequence(
        [_code(value, meaning) for value, meaning in codes]
    )
    out.LongitudinalTemporalInformationModified = "MODIFIED" if shift is not None else "REMOVED"
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.file_meta = copy.deepcopy(meta)
        if "SOPInstanceUID" in out:
            out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    return out


def _walk(ds: Dataset, profile: Profile, shift: timedelta | None) -> None:
    """Apply the action table to ``ds`` and every dataset nested in its sequences."""
    for tag in list(ds.keys()):
        element = ds[tag]
        action = _action_for(tag, element, shift is not None)
        if action is not None:
            action(ds, tag, element, profile, shift)
        elif element.VR == "SQ" and element.value is not None:
            for item in element.value:
                _walk(item, profile, shift)


_Action = Callable[[Dataset, BaseTag, DataElement, Profile, "timedelta | None"], None]


def _action_for(tag: BaseTag, element: DataElement, shifting: bool) -> _Action | None:
    keyword = keyword_for_tag(tag)
    group = tag.group
    if keyword in REMOVE or _is_curve_or_overlay_text(group, tag.element):
        return _remove
    if keyword in EMPTY:
        return _empty
    if keyword in EMPTY_DATES or keyword in REMOVE_DATES:
        if shifting and element.VR in ("DA", "DT"):
            return _shift
        if shifting and element.VR == "TM":
            return None  # a shifted date keeps its time of day
        return _empty if keyword in EMPTY_DATES else _remove
    if element.VR == "UI" and keyword not in _KEEP_UIDS:
        return _replace_uid
    return None


def _is_curve_or_overlay_text(group: int, element: int) -> bool:
    """Curves (50xx, retired) and overlay comments / activation text (60xx,4000 / 60xx,1500)."""
    if 0x5000 <= group <= 0x50FF and group % 2 == 0:
        return True
    return 0x6000 <= group <= 0x60FF and group % 2 == 0 and element in (0x4000, 0x1500)


def _remove(
    ds: Dataset, tag: BaseTag, element: DataElement, profile: Profile, shift: timedelta | None
) -> None:
    del ds[tag]


def _empty(
    ds: Dataset, tag: BaseTag, element: DataElement, profile: Profile, shift: timedelta | None
) -> None:
    ds[tag] = DataElement(tag, element.VR, Sequence() if element.VR == "SQ" else "")


def _replace_uid(
    ds: Dataset, tag: BaseTag, element: DataElement, profile: Profile, shift: timedelta | None
) -> None:
    values = element.value if element.VM > 1 else [element.value]
    fresh = [
        str(v) if not v or str(v).startswith(_STANDARD_UID_ROOT) else new_uid(profile.key, str(v))
        for v in values
    ]
    ds[tag].value = fresh if element.VM > 1 else fresh[0]


def _shift(
    ds: Dataset, tag: BaseTag, element: DataElement, profile: Profile, shift: timedelta | None
) -> None:
    assert shift is not None
    text = str(element.value or "")
    if len(text) < 8 or not text[:8].isdigit():
        ds[tag].value = ""
        return
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:8])) - shift
    except ValueError:
        ds[tag].value = ""
        return
    ds[tag].value = moved.strftime("%Y%m%d") + (text[8:] if element.VR == "DT" else "")


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item
