"""Pages for clinic doctors: sign-in, the clinic's cases, raising a case, a case with its advice.
Session cookie + CSRF (Flask-WTF); every free text is rendered escaped by Jinja."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from shared.enums import Priority, Sex
from shared.errors import TeleconsultError
from shared.schemas import CaseCreateSchema, load_or_raise
from spoke.context import spoke

bp = Blueprint("pages", __name__)

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])
VITALS = (
    ("bp_systolic", "BP systolic (mmHg)"), ("bp_diastolic", "BP diastolic (mmHg)"), ("pulse", "Pulse (/min)"),
    ("resp_rate", "Respiratory rate (/min)"), ("temperature_c", "Temperature (°C)"), ("spo2", "SpO₂ (%)"),
    ("weight_kg", "Weight (kg)"),
)


def signed_in(view: F) -> F:
    """Pages behind the sign-in: the doctor is in ``g.doctor``."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        doctor = spoke().accounts.doctor(session.get("username", ""))
        if doctor is None:
            session.clear()
            return redirect(url_for("pages.sign_in", next=request.path))
        g.doctor = doctor
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


@bp.app_context_processor
def _banner() -> dict[str, Any]:
    s = spoke()
    return {"hub_reachable": s.outbox.hub_reachable, "outbox_pending": s.store.count_pending(),
            "spoke_code": s.settings.spoke_code, "doctor": g.get("doctor")}


@bp.route("/signin", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        try:
            doctor = spoke().accounts.sign_in(username, request.form.get("password", ""))
        except TeleconsultError as exc:
            error = exc.message
        else:
            session.clear()
            session["username"] = doctor.username
            return redirect(_safe_next(request.args.get("next")))
    return render_template("signin.html", error=error), 401 if error else 200


def _safe_next(target: str | None) -> str:
    """Only a path on this site, never another host."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("pages.case_list")


@bp.post("/signout")
def sign_out() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("pages.sign_in"))


@bp.get("/")
@signed_in
def case_list() -> ResponseReturnValue:
    return render_template("cases.html", cases=spoke().store.list_cases())


@bp.route("/cases/new", methods=["GET", "POST"])
@signed_in
def new_case() -> ResponseReturnValue:
    form: dict[str, Any] = {}
    error, fields = None, {}
    if request.method == "POST":
        form = request.form.to_dict()
        try:
            data = load_or_raise(CaseCreateSchema(), case_from_form(form))
            case = spoke().store.raise_case(data, g.doctor.username)
        except TeleconsultError as exc:
            error, fields = exc.message, {k: _words(v) for k, v in exc.fields.items()}
        else:
            spoke().outbox.wake()
            return redirect(url_for("pages.case_page", uid=case["uid"]))
    return render_template(
        "new_case.html", form=form, error=error, fields=fields, vitals=VITALS,
        specialties=spoke().store.specialties(), priorities=[p.value for p in Priority], sexes=[s.value for s in Sex],
    ), 400 if error else 200


def case_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The JSON body of a case from the form's strings; numbers the schema checks."""
    vitals = {key: _number(form.get(key, "")) for key, _label in VITALS if form.get(key, "").strip()}
    return {
        "patient": {"pseudonym": form.get("pseudonym", "").strip(), "age": _number(form.get("age", "")),
                    "sex": form.get("sex", "")},
        "complaint": form.get("complaint", "").strip(), "history": form.get("history", "").strip(),
        "vitals": vitals, "question": form.get("question", "").strip(),
        "specialty": form.get("specialty", ""), "priority": form.get("priority", Priority.ROUTINE.value),
    }


def _words(problem: Any) -> str:
    """A schema's error messages (lists, nested per field) as one line for the form."""
    if isinstance(problem, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_words(v)}" for k, v in problem.items())
    if isinstance(problem, list):
        return " ".join(_words(p) for p in problem)
    return str(problem)


def _number(raw: str) -> Any:
    text = raw.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text  # the schema says what is wrong with it


@bp.get("/cases/<uid>")
@signed_in
def case_page(uid: str) -> ResponseReturnValue:
    try:
        case = spoke().store.get_case(uid)
    except TeleconsultError:
        abort(404)
    return render_template("case.html", case=case, vitals=VITALS)
