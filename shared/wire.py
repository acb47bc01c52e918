"""Marshmallow schemas of what the hub answers: they document the REST contract (OpenAPI)
and let tests check answers against it. Loading requests is in ``shared.schemas``."""

from __future__ import annotations

from marshmallow import Schema, fields

from shared.schemas import PatientSchema, PrescriptionSchema


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields")


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class UserRefSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    name = fields.String()


class UserSchema(UserRefSchema):
    role = fields.String()
    spoke = fields.String(allow_none=True)
    specialties = fields.List(fields.String())
    qualification = fields.String()
    registration_number = fields.String()
    language = fields.String()


class SpecialistSchema(UserSchema):
    active = fields.Boolean()
    on_duty = fields.Boolean(metadata={"description": "switch, schedule and presence together"})
    on_duty_switch = fields.Boolean()
    on_call = fields.Boolean()
    duty_schedule = fields.String()
    max_active_cases = fields.Integer()
    online = fields.Boolean()


class TokenResponseSchema(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserSchema)


class SpecialtySchema(Schema):
    code = fields.String()
    name = fields.String()


class SpecialtyHoursSchema(SpecialtySchema):
    hours = fields.String()
    open_now = fields.Boolean()
    opens_at = fields.DateTime(allow_none=True)


class CaseSchema(Schema):
    id = fields.Integer()
    uid = fields.String()
    token = fields.String(metadata={"example": "ORTHO-0042"})
    accession_number = fields.String()
    status = fields.String()
    priority = fields.String()
    specialty = fields.String()
    spoke = fields.String()
    patient = fields.Nested(PatientSchema)
    complaint = fields.String()
    history = fields.String()
    vitals = fields.Dict()
    question = fields.String()
    raised_by = fields.Nested(UserRefSchema, allow_none=True)
    assigned_to = fields.Nested(UserRefSchema, allow_none=True)
    queue_position = fields.Integer(
        allow_none=True, metadata={"description": "1-based; null once review started"}
    )
    eta = fields.DateTime(
        allow_none=True,
        metadata={
            "description": "when the case is expected to be seen (never in the past); null "
            "while nobody of the specialty is on duty"
        },
    )
    eta_not_before = fields.DateTime(
        allow_none=True,
        metadata={
            "description": "while nobody of the specialty is on duty: the case is not seen "
            "before this time (the next opening), if known"
        },
    )
    sla_due_at = fields.DateTime(allow_none=True)
    sla_breached = fields.Boolean()
    first_response_at = fields.DateTime(allow_none=True)
    routing_reason = fields.String()
    created_at = fields.DateTime()
    submitted_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()
    version = fields.Integer(
        metadata={"description": "grows with every change of the case: newer state, higher"}
    )
    clinic_actions = fields.List(
        fields.String(),
        metadata={"description": "what the clinic may do now, e.g. provide_info, close, cancel"},
    )


class CasePageSchema(Schema):
    items = fields.List(fields.Nested(CaseSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class HistoryStepSchema(Schema):
    at = fields.DateTime()
    action = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    actor = fields.String()
    assigned_to = fields.Nested(UserRefSchema, allow_none=True)
    reason = fields.String()


class SignedBySchema(Schema):
    username = fields.String()
    name = fields.String()
    qualification = fields.String()
    registration_number = fields.String()


class SpokeRefSchema(Schema):
    code = fields.String()
    name = fields.String()


class AdviceSchema(Schema):
    id = fields.Integer()
    uid = fields.String()
    case_id = fields.Integer()
    case_uid = fields.String()
    case_token = fields.String()
    spoke = fields.Nested(SpokeRefSchema)
    patient = fields.Nested(PatientSchema)
    version = fields.Integer()
    supersedes_id = fields.Integer(allow_none=True)
    specialist = fields.Nested(SignedBySchema)
    assessment = fields.String()
    recommendations = fields.String()
    disposition = fields.String()
    prescriptions = fields.List(fields.Nested(PrescriptionSchema))
    investigations = fields.String()
    follow_up_date = fields.Date(allow_none=True)
    issued_at = fields.DateTime()
    verification_code = fields.String()


class MessageSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    author = fields.Nested(UserRefSchema)
    text = fields.String()
    created_at = fields.DateTime()


class SeriesSummarySchema(Schema):
    series_uid = fields.String()
    modality = fields.String()
    number = fields.Integer(allow_none=True)
    description = fields.String()
    instances = fields.Integer()


class StudySchema(Schema):
    study_uid = fields.String()
    accession_number = fields.String()
    patient_id = fields.String()
    study_date = fields.String()
    description = fields.String()
    series = fields.List(fields.Nested(SeriesSummarySchema))


class WaitsSchema(Schema):
    p50_s = fields.Float(allow_none=True)
    p90_s = fields.Float(allow_none=True)


class DashboardSpecialistSchema(Schema):
    username = fields.String()
    name = fields.String()
    specialties = fields.List(fields.String())
    supervisees = fields.Integer()
    active_cases = fields.Integer()
    on_duty = fields.Boolean()
    on_call = fields.Boolean()
    online = fields.Boolean()


class SpokeTodaySchema(Schema):
    code = fields.String()
    cases_today = fields.Integer()


class DashboardSummarySchema(Schema):
    ratio = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    waits = fields.Nested(WaitsSchema)
    sla_breaches = fields.Integer(metadata={"description": "breaches today"})
    sla_breaches_open = fields.Integer()
    specialists = fields.List(fields.Nested(DashboardSpecialistSchema))
    shortfall = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "specialty code -> specialists missing"},
    )
    spokes = fields.List(fields.Nested(SpokeTodaySchema))


class SupervisionTeamSchema(Schema):
    specialist = fields.Nested(UserRefSchema)
    supervisees = fields.List(fields.Nested(UserRefSchema))


class SupervisionGroupSchema(Schema):
    specialty = fields.String()
    ratio = fields.Integer()
    groups = fields.List(fields.Nested(SupervisionTeamSchema))
    unsupervised = fields.List(fields.Nested(UserRefSchema))
    shortfall = fields.Integer()
    shortfall_text = fields.String()


class AuditEntrySchema(Schema):
    id = fields.Integer()
    at = fields.String()
    user = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    spoke = fields.String(allow_none=True)
    action = fields.String()
    object_type = fields.String()
    object_id = fields.String()
    case_id = fields.Integer(allow_none=True)
    remote_addr = fields.String()
    detail = fields.Dict()


class UserStatusSchema(UserRefSchema):
    role = fields.String()
    active = fields.Boolean()
