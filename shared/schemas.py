"""Marshmallow schemas of the wire format (hub REST, spoke sync). Loading validates;
a ``ValidationError`` becomes a 400 with the failing fields at the edge."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from shared.accession import MAX_LEN, is_valid_accession_number
from shared.enums import CaseStatus, Disposition, Priority, Role, Sex

_TEXT = validate.Length(min=1, max=4000)
_LONG_TEXT = validate.Length(max=20000)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class PatientSchema(StrictSchema):
    pseudonym = fields.String(required=True, validate=validate.Length(min=1, max=64))
    age = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=130))
    sex = fields.String(required=True, validate=validate.OneOf([s.value for s in Sex]))


class VitalsSchema(StrictSchema):
    bp_systolic = fields.Integer(validate=validate.Range(min=30, max=300), allow_none=True)
    bp_diastolic = fields.Integer(validate=validate.Range(min=10, max=200), allow_none=True)
    pulse = fields.Integer(validate=validate.Range(min=10, max=300), allow_none=True)
    resp_rate = fields.Integer(validate=validate.Range(min=2, max=100), allow_none=True)
    temperature_c = fields.Float(validate=validate.Range(min=25, max=45), allow_none=True)
    spo2 = fields.Integer(validate=validate.Range(min=30, max=100), allow_none=True)
    weight_kg = fields.Float(validate=validate.Range(min=0.3, max=400), allow_none=True)


def _check_accession(value: str) -> None:
    if not is_valid_accession_number(value):
        raise ValidationError(
            f"Use 1 to {MAX_LEN} letters, digits, '-', '_' or '.' (it is typed on modalities)."
        )


class CaseCreateSchema(StrictSchema):
    """A case as a clinic raises it."""

    uid = fields.UUID(load_default=None)
    patient = fields.Nested(PatientSchema, required=True)
    complaint = fields.String(required=True, validate=_TEXT)
    history = fields.String(load_default="", validate=_LONG_TEXT)
    vitals = fields.Nested(VitalsSchema, load_default=dict)
    question = fields.String(required=True, validate=_TEXT)
    specialty = fields.String(required=True, validate=validate.Length(min=1, max=32))
    priority = fields.String(
        load_default=Priority.ROUTINE.value, validate=validate.OneOf([p.value for p in Priority])
    )
    accession_number = fields.String(load_default=None, allow_none=True, validate=_check_accession)
    # Set by a spoke's service when it syncs a case a clinic doctor raised at the spoke.
    raised_by = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


class PrescriptionSchema(StrictSchema):
    drug = fields.String(required=True, validate=validate.Length(min=1, max=200))
    strength = fields.String(load_default="", validate=validate.Length(max=100))
    dose = fields.String(required=True, validate=validate.Length(min=1, max=100))
    route = fields.String(required=True, validate=validate.Length(min=1, max=50))
    frequency = fields.String(required=True, validate=validate.Length(min=1, max=100))
    duration = fields.String(required=True, validate=validate.Length(min=1, max=100))
    instructions = fields.String(load_default="", validate=validate.Length(max=1000))


class AdviceCreateSchema(StrictSchema):
    assessment = fields.String(required=True, validate=_TEXT)
    recommendations = fields.String(required=True, validate=_LONG_TEXT)
    disposition = fields.String(
        required=True, validate=validate.OneOf([d.value for d in Disposition])
    )
    prescriptions = fields.List(fields.Nested(PrescriptionSchema), load_default=list)
    investigations = fields.String(load_default="", validate=_LONG_TEXT)
    follow_up_date = fields.Date(load_default=None, allow_none=True)


class MessageCreateSchema(StrictSchema):
    text = fields.String(required=True, validate=_TEXT)


class TokenRequestSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class CaseListQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in CaseStatus]))
    specialty = fields.String()
    priority = fields.String(validate=validate.OneOf([p.value for p in Priority]))
    spoke = fields.String()
    # "me", a specialist's username, or "none" for the specialty pools.
    assigned_to = fields.String(validate=validate.Length(min=1, max=64))
    sla_breached = fields.Boolean()
    # "queue": waiting cases in the order they will be seen; default newest first.
    order = fields.String(load_default="newest", validate=validate.OneOf(["newest", "queue"]))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


# -- clinical actions ------------------------------------------------------------------------


class ReasonSchema(StrictSchema):
    """Body of release, close and cancel: an optional reason, kept in the case history."""

    reason = fields.String(load_default="", validate=validate.Length(max=2000))


class InfoSchema(StrictSchema):
    """Body of request-info (the specialist's question) and provide-info (the clinic's answer)."""

    text = fields.String(required=True, validate=_TEXT)


class ReferSchema(StrictSchema):
    """Body of refer: why and where to (``reason``) and what the clinic should do for the
    transfer (``instructions``, optional); both reach the clinic's thread."""

    reason = fields.String(required=True, validate=_TEXT)
    instructions = fields.String(load_default="", validate=validate.Length(max=4000))


class ReassignSchema(StrictSchema):
    specialist = fields.String(required=True, validate=validate.Length(min=1, max=64))
    reason = fields.String(load_default="", validate=validate.Length(max=2000))


# -- staff, hours, supervision ------------------------------------------------------------------


class UserCreateSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{2,64}$"))
    # The password rule (length by role) is the hub's: hub.domain.passwords.
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    name = fields.String(load_default="", validate=validate.Length(max=200))
    spoke = fields.String(load_default=None, allow_none=True)
    specialties = fields.List(fields.String(), load_default=list)
    qualification = fields.String(load_default="", validate=validate.Length(max=200))
    registration_number = fields.String(load_default="", validate=validate.Length(max=64))
    on_call = fields.Boolean()
    duty_schedule = fields.String(validate=validate.Length(max=200))
    max_active_cases = fields.Integer(validate=validate.Range(min=1, max=500))


class SpecialistUpdateSchema(StrictSchema):
    on_duty = fields.Boolean()
    on_call = fields.Boolean()
    duty_schedule = fields.String(validate=validate.Length(max=200))
    max_active_cases = fields.Integer(validate=validate.Range(min=1, max=500))
    active = fields.Boolean()


class UserUpdateSchema(StrictSchema):
    active = fields.Boolean(required=True)


class PasswordChangeSchema(StrictSchema):
    current_password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class PasswordResetSchema(StrictSchema):
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class AuditQuerySchema(Schema):
    user = fields.String(validate=validate.Length(max=64))
    case = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    since = fields.AwareDateTime(data_key="from")
    until = fields.AwareDateTime(data_key="to")
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "fhir"]))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10000))


class HoursSchema(StrictSchema):
    hours = fields.String(required=True, validate=validate.Length(max=200))


class SupervisionReassignSchema(StrictSchema):
    specialty = fields.String(required=True)
    doctor = fields.String(required=True)
    specialist = fields.String(required=True)


class SupervisionQuerySchema(Schema):
    specialty = fields.String()


class SpecialistQuerySchema(Schema):
    specialty = fields.String()


def load_or_raise(schema: Schema, data: Any) -> dict[str, Any]:
    """Load ``data`` with ``schema``; a missing or non-object body counts as invalid input."""
    from shared.errors import InvalidInput

    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    try:
        result: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise InvalidInput(
            "Some fields are missing or invalid.", fields=_flatten(exc.messages)
        ) from None
    return result


def _flatten(messages: Any) -> dict[str, Any]:
    return messages if isinstance(messages, dict) else {"_schema": messages}
