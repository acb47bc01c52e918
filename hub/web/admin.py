"""The admin's pages: users and roles, spokes with AE titles and service tokens, specialties and
their hours, supervision groups, specialists' duty schedules. No clinical content."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from hub.services import page_reads
from hub.services.accounts import register_spoke
from hub.services.audit import audit
from hub.services.staff import StaffService
from hub.services.supervision import SupervisionService
from hub.web.pages import page, page_errors, principal, services
from shared.enums import Role
from shared.errors import TeleconsultError
from shared.schemas import SpecialistUpdateSchema, UserCreateSchema, load_or_raise
from teleconsult.i18n import translate_fields, translate_message

bp = Blueprint("admin", __name__, url_prefix="/admin")
page_errors(bp)


def _reference() -> dict[str, Any]:
    session = services()["session"]
    return {
        "spokes": page_reads.spokes(session),
        "specialties": page_reads.specialties(session),
        "roles": [r.value for r in Role],
    }


@bp.route("/users", methods=["GET", "POST"])
@page(Role.ADMIN)
def users() -> ResponseReturnValue:
    error, fields = None, {}
    if request.method == "POST":
        form = request.form
        data: dict[str, Any] = {
            k: form.get(k, "").strip()
            for k in (
                "username",
                "password",
                "role",
                "name",
                "qualification",
                "registration_number",
            )
        }
        data["spoke"] = form.get("spoke") or None
        data["specialties"] = form.getlist("specialties")
        try:
            StaffService(**services()).create_user(
                principal(), load_or_raise(UserCreateSchema(), data)
            )
        except TeleconsultError as exc:
            error, fields = translate_message(exc.message), translate_fields(exc.fields)
        else:
            flash(_("User %(name)s added.", name=data["username"]))
            return redirect(url_for("admin.users"))
    rows = page_reads.users(services()["session"])
    return render_template(
        "admin_users.html", users=rows, error=error, fields=fields, **_reference()
    ), 400 if error else 200


@bp.route("/spokes", methods=["GET", "POST"])
@page(Role.ADMIN)
def spokes() -> ResponseReturnValue:
    token = None
    if request.method == "POST":
        kw = services()
        code = request.form.get("code", "").strip().upper()
        aes = [a.strip().upper() for a in request.form.get("ae_titles", "").split(",") if a.strip()]
        if code:
            spoke, token = register_spoke(
                kw["session"], code, request.form.get("name", "").strip(), aes
            )
            audit(
                kw["session"],
                kw["clock"],
                principal(),
                "update",
                "spoke",
                spoke.code,
                kw["remote_addr"],
            )
            kw["session"].commit()
    return render_template("admin_spokes.html", token=token, **_reference())


@bp.route("/specialties", methods=["GET", "POST"])
@page(Role.ADMIN)
def specialties() -> ResponseReturnValue:
    error = None
    staff = StaffService(**services())
    if request.method == "POST":
        try:
            staff.set_hours(
                principal(), request.form.get("code", ""), request.form.get("hours", "")
            )
        except TeleconsultError as exc:
            error = exc.message
        else:
            return redirect(url_for("admin.specialties"))
    hours = {s.code: staff.hours_of(s) for s in _reference()["specialties"]}
    return render_template(
        "admin_specialties.html", hours=hours, error=error, **_reference()
    ), 400 if error else 200


@bp.get("/supervision")
@page(Role.ADMIN)
def supervision() -> ResponseReturnValue:
    kw = services()
    groups = SupervisionService(
        kw["session"], kw["clock"], kw["policy"], kw["remote_addr"]
    ).overview(principal())
    return render_template("admin_supervision.html", groups=groups)


@bp.route("/duty", methods=["GET", "POST"])
@page(Role.ADMIN)
def duty() -> ResponseReturnValue:
    staff = StaffService(**services())
    error = None
    if request.method == "POST":
        form = request.form
        data = {
            "on_duty": form.get("on_duty") == "on",
            "on_call": form.get("on_call") == "on",
            "duty_schedule": form.get("duty_schedule", "").strip(),
            "active": form.get("active") == "on",
        }
        if form.get("max_active_cases", "").strip().isdigit():
            data["max_active_cases"] = int(form["max_active_cases"])
        try:
            staff.update_specialist(
                principal(),
                int(form.get("user_id", "0")),
                load_or_raise(SpecialistUpdateSchema(), data),
            )
        except TeleconsultError as exc:
            error = exc.message
        else:
            return redirect(url_for("admin.duty"))
    rows = [staff.describe(u) for u in staff.specialists(principal())]
    return render_template("admin_duty.html", specialists=rows, error=error), 400 if error else 200
