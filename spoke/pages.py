"""Pages for clinic doctors: sign-in, the clinic's cases, raising a case, a case with its advice.
Session cookie + CSRF (Flask-WTF); every free text is rendered escaped by Jinja."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from shared.enums import ENDED_STATUSES, Priority, Sex
from shared.errors import NotAuthenticated, TeleconsultError
from shared.eta import as_received
from shared.schemas import CaseCreateSchema, load_or_raise
from spoke.accounts import ClinicDoctor
from spoke.context import spoke
from spoke.documents import prescription_pdf
from spoke.hub_api import HubRefused, HubUnavailable
from spoke.inbox import Inbox
from spoke.progress import version as progress_version
from spoke.progress import with_images
from spoke.replies import send_to_specialist
from teleconsult.i18n import (
    LANGUAGES,
    SESSION_KEY,
    specialty_label,
    translate_fields,
    translate_message,
)
from teleconsult.localtime import local_time, zone
from teleconsult.websecurity import safe_next

bp = Blueprint("pages", __name__)

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])
SESSION_TOKEN = "spoke_session"  # the raw session token; its row (LocalToken) is the session
VITALS = (
    ("bp_systolic", _l("BP systolic (mmHg)")),
    ("bp_diastolic", _l("BP diastolic (mmHg)")),
    ("pulse", _l("Pulse (/min)")),
    ("resp_rate", _l("Respiratory rate (/min)")),
    ("temperature_c", _l("Temperature (°C)")),
    ("spo2", _l("SpO₂ (%)")),
    ("weight_kg", _l("Weight (kg)")),
)


def signed_in(view: F) -> F:
    """Pages behind the sign-in: the doctor is in ``g.doctor``."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        doctor = _session_doctor()
        if doctor is None:
            _clear_session()
            return redirect(url_for("pages.sign_in", next=request.path))
        g.doctor = doctor
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _session_doctor() -> ClinicDoctor | None:
    """The doctor of the cookie's server-side session: revoked at sign-out, expired, or
    deactivated at the hub, it is None."""
    token = session.get(SESSION_TOKEN)
    if not token:
        return None
    try:
        return spoke().accounts.authenticate(str(token))
    except NotAuthenticated:
        return None


@bp.app_context_processor
def _banner() -> dict[str, Any]:
    s = spoke()
    return {
        "hub_reachable": s.outbox.hub_reachable,
        "outbox_pending": s.store.count_pending(),
        "spoke_code": s.settings.spoke_code,
        "doctor": g.get("doctor"),
        "live_version": live_version if g.get("doctor") else None,
        "specialty_name": _specialty_name,
        "doctor_name": _doctor_name,
        "eta_text": eta_text,
    }


def eta_text(case: dict[str, Any], short: bool = False) -> str:
    """When the clinic may expect its waiting case to be seen, by the one ETA rule
    (``shared.eta``) applied now, in the clinic's time zone (config ``timezone``)."""
    if case.get("queue_position") is None or case.get("sla_breached"):
        return ""
    s = spoke()
    shown = as_received(s.clock.now(), _when(case.get("eta")), _when(case.get("eta_not_before")))
    tz = zone(str(s.settings.get("timezone") or "UTC"))
    if shown.at is not None:
        when = local_time(shown.at, tz, "%H:%M")
        return str(
            _("about %(time)s", time=when) if short else _("expected about %(time)s", time=when)
        )
    if shown.not_before is not None:
        day = DAY_NAMES[shown.not_before.astimezone(tz).weekday()]
        when = f"{day} {local_time(shown.not_before, tz, '%H:%M')}"
        return str(_("no specialist on duty now: not before %(time)s", time=when))
    return str(_("no specialist on duty now"))


def _when(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


DAY_NAMES = (_l("Mon"), _l("Tue"), _l("Wed"), _l("Thu"), _l("Fri"), _l("Sat"), _l("Sun"))


def _specialty_name(code: str) -> str:
    return specialty_label(code, dict(spoke().store.specialties()).get(code, code))


def _doctor_name(username: str | None) -> str:
    if not username:
        return "—"
    doctor = spoke().accounts.doctor(username)
    return doctor.name if doctor is not None else username


_CHOSEN_SIGNED_OUT = "lang_chosen_signed_out"


@bp.route("/signin", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        try:
            doctor = spoke().accounts.sign_in(username, request.form.get("password", ""))
        except TeleconsultError as exc:
            error = _(exc.message)  # translated when the catalog knows the message
        else:
            chosen_here = session.get(_CHOSEN_SIGNED_OUT)
            _clear_session()
            session[SESSION_TOKEN], _ttl = spoke().accounts.issue_token(doctor)
            session["username"] = doctor.username
            if doctor.language in LANGUAGES:
                session[SESSION_KEY] = doctor.language  # the doctor's own choice, remembered here
            elif chosen_here and session.get(SESSION_KEY) in LANGUAGES:
                # Chosen on the sign-in page (not left behind by the previous doctor): theirs now.
                spoke().accounts.set_language(doctor.username, session[SESSION_KEY])
            return redirect(safe_next(request.args.get("next"), url_for("pages.case_list")))
    return render_template("signin.html", error=error), 401 if error else 200


@bp.post("/signout")
def sign_out() -> ResponseReturnValue:
    token = session.get(SESSION_TOKEN)
    if token:
        spoke().accounts.revoke(str(token))  # the old cookie is worth nothing from now on
    _clear_session()
    return redirect(url_for("pages.sign_in"))


def _clear_session() -> None:
    """Forget who is signed in, but keep the chosen language (the spoke keeps it per browser)."""
    lang = session.get(SESSION_KEY)
    session.clear()
    if lang in LANGUAGES:
        session[SESSION_KEY] = lang


def user_language() -> str | None:
    """The signed-in doctor's language: the session holds the choice remembered for them."""
    lang = session.get(SESSION_KEY) if session.get("username") else None
    return lang if lang in LANGUAGES else None


@bp.post("/language")
def language() -> ResponseReturnValue:
    """Choose the pages' language (CSRF-checked like every form); kept in the session."""
    lang = request.form.get("language", "")
    if lang in LANGUAGES:
        session[SESSION_KEY] = lang
        if session.get("username"):
            spoke().accounts.set_language(session["username"], lang)
        else:
            session[_CHOSEN_SIGNED_OUT] = True
    return redirect(safe_next(request.form.get("next"), url_for("pages.case_list")))


@bp.get("/")
@signed_in
def case_list() -> ResponseReturnValue:
    return render_template("cases.html", cases=spoke().store.list_cases())


@bp.get("/cases/rows")
@signed_in
def case_rows() -> ResponseReturnValue:
    """The list's table alone: the page script swaps it in when something changed."""
    return render_template("_case_rows.html", cases=spoke().store.list_cases())


@bp.get("/live")
@signed_in
def live() -> ResponseReturnValue:
    """What the pages poll (a few bytes): a fingerprint of the local store, the link, the outbox."""
    s = spoke()
    return jsonify(
        version=live_version(),
        hub_reachable=s.outbox.hub_reachable,
        pending=s.store.count_pending(),
        banner=render_template("_banner.html"),
        alert=_alert(s.store.latest_alert()),
    )


_ALERT_TITLES = {
    "info_request": _l("The specialist asks a question about case %(token)s"),
    "advice": _l("New advice for case %(token)s"),
    "referral": _l("Case %(token)s is referred: transfer the patient"),
    "sla_warning": _l("Case %(token)s has not been answered in time"),
}


def _alert(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newest thing that calls for the clinic's attention, worded for an alert."""
    if item is None:
        return None
    uid = item["case_uid"]
    token = spoke().store.get_case(uid)["token"] or ""
    return {
        "id": item["id"],
        "kind": item["kind"],
        "title": str(_ALERT_TITLES[item["kind"]]) % {"token": token},
        "body": item["text"][:200],
        "url": url_for("pages.case_page", uid=uid),
    }


def live_version() -> str:
    """Changes whenever anything a page shows may have changed."""
    s = spoke()
    uploads = s.uploads.queue.changes if s.uploads is not None else 0
    return (
        f"{s.store.last_seq()}:{s.store.count_pending()}:{s.outbox.hub_reachable}:"
        f"{s.store.cases_stamp()}:{uploads}:{progress_version()}"
    )


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
            # In the doctor's language, each message beside its field.
            error = translate_message(exc.message)
            fields = {k: _words(v) for k, v in translate_fields(exc.fields).items()}
        else:
            spoke().outbox.wake()
            return redirect(url_for("pages.case_page", uid=case["uid"]))
    return render_template(
        "new_case.html",
        form=form,
        error=error,
        fields=fields,
        vitals=VITALS,
        specialties=spoke().store.specialties(),
        priorities=[p.value for p in Priority],
        sexes=[s.value for s in Sex],
    ), 400 if error else 200


def case_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The JSON body of a case from the form's strings; numbers the schema checks."""
    vitals = {
        key: _number(form.get(key, "")) for key, _label in VITALS if form.get(key, "").strip()
    }
    return {
        "patient": {
            "pseudonym": form.get("pseudonym", "").strip(),
            "age": _number(form.get("age", "")),
            "sex": form.get("sex", ""),
        },
        "complaint": form.get("complaint", "").strip(),
        "history": form.get("history", "").strip(),
        "vitals": vitals,
        "question": form.get("question", "").strip(),
        "specialty": form.get("specialty", ""),
        "priority": form.get("priority", Priority.ROUTINE.value),
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


def _case_with_images(uid: str) -> dict[str, Any]:
    try:
        return with_images([spoke().store.get_case(uid)])[0]
    except TeleconsultError:
        abort(404)


@bp.get("/cases/<uid>")
@signed_in
def case_page(uid: str) -> ResponseReturnValue:
    case = _case_with_images(uid)
    unsent = session.pop(_UNSENT, None)
    if not isinstance(unsent, dict) or unsent.get("uid") != uid:
        unsent = None
    return render_template("case.html", case=case, vitals=VITALS, unsent=unsent)


@bp.get("/cases/<uid>/live")
@signed_in
def case_live(uid: str) -> ResponseReturnValue:
    case = _case_with_images(uid)
    return render_template("_case_live.html", case=case, vitals=VITALS)


@bp.get("/cases/<uid>/advice/<int:version>.pdf")
@signed_in
def advice_pdf(uid: str, version: int) -> ResponseReturnValue:
    """The e-prescription of an advice version, made here from the advice the clinic stored: the
    same document as the hub's, available while the link to the hub is down."""
    case = _case_with_images(uid)
    pdf = prescription_pdf(spoke().settings, case.get("advice") or [], version, _)
    if pdf is None:
        abort(404)
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'inline; filename="e-prescription-{case.get("token") or uid}-v{version}.pdf"'
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/cases/<uid>/messages")
@signed_in
def post_message(uid: str) -> ResponseReturnValue:
    """A message to the specialist, or the answer while they wait for one (``spoke.replies``).

    Sent to the hub at once; when it cannot be, the doctor's words are not lost: the case page
    puts them back in the box with the reason beside it, to send again."""
    text = request.form.get("text", "")
    problem = None
    try:
        send_to_specialist(
            spoke().store, spoke().hub_api, uid, g.doctor.name, text, g.doctor.username
        )
    except HubUnavailable:
        problem = _(
            "The hub cannot be reached now: your message was not sent. Try again when the "
            "link is back."
        )
    except HubRefused as exc:
        problem = _("The hub refused: %(reason)s", reason=exc.message)
    except TeleconsultError as exc:
        problem = _(exc.message)  # spoke.replies' messages are in the catalog
    if problem is None:
        return redirect(url_for("pages.case_page", uid=uid, _anchor="thread"))
    session[_UNSENT] = {"uid": uid, "text": text[:4000], "error": problem}
    return redirect(url_for("pages.case_page", uid=uid, _anchor="message-form"))


# The words a doctor sent that did not reach the hub, for the case page to put back.
_UNSENT = "unsent_message"


def _at_hub(call: Callable[[], object], unreachable: str) -> None:
    """Do something at the hub now (the clinic's online-only actions); tell the doctor if not."""
    try:
        call()
    except HubUnavailable:
        flash(unreachable)
    except HubRefused as exc:
        flash(_("The hub refused: %(reason)s", reason=exc.message))


@bp.post("/cases/<uid>/close")
@signed_in
def close_case(uid: str) -> ResponseReturnValue:
    """The clinic closes an advised or referred case at the hub (online only)."""
    case = _case_with_images(uid)
    if not case.get("hub_id"):
        flash(_("The case has not reached the hub yet: try again shortly."))
    else:
        _at_hub(
            lambda: spoke().hub_api.close_case(case["hub_id"], g.doctor.username),
            _(
                "The hub cannot be reached now: the case was not closed. Try again when the link "
                "is back."
            ),
        )
    return redirect(url_for("pages.case_page", uid=uid))


@bp.post("/cases/<uid>/cancel")
@signed_in
def cancel_case(uid: str) -> ResponseReturnValue:
    """The clinic cancels the case: kept here at once, sent to the hub when the link allows."""
    reason = request.form.get("reason", "").strip()[:2000]
    try:
        case = spoke().store.request_cancel(uid, reason, g.doctor.name)
    except TeleconsultError as exc:
        flash(exc.message)
    else:
        spoke().outbox.wake()
        if case["sync_state"] == "withdrawn":
            flash(_("The case is cancelled; it had not been sent to the hub."))
        else:
            flash(_("The case is cancelled here; the hub is told as soon as the link allows."))
    return redirect(url_for("pages.case_page", uid=uid))


@bp.get("/inbox")
@signed_in
def inbox() -> ResponseReturnValue:
    """Studies from the clinic's modalities that matched no case, to attach by hand."""
    error, studies = None, []
    try:
        studies = Inbox(spoke().hub_api).studies()
    except TeleconsultError as exc:
        error = exc.message
    cases = [
        c for c in spoke().store.list_cases() if c["hub_id"] and c["status"] not in ENDED_STATUSES
    ]
    return render_template(
        "inbox.html",
        studies=studies,
        cases=cases,
        error=error,
        selected=request.args.get("case", ""),
    )


@bp.post("/inbox/<study_uid>/attach")
@signed_in
def attach(study_uid: str) -> ResponseReturnValue:
    case_uid = request.form.get("case_uid", "")
    spoke().store.get_case(case_uid)  # this clinic's case only
    try:
        Inbox(spoke().hub_api).attach(study_uid, case_uid, g.doctor.username)
    except TeleconsultError as exc:
        flash(exc.message)
        return redirect(url_for("pages.inbox"))
    flash(_("The study is attached to the case."))
    return redirect(url_for("pages.case_page", uid=case_uid))
