"""The clinic doctor's pages: sign-in, raising a case, escaped free text, CSRF, the banner."""

from __future__ import annotations

from flask.testing import FlaskClient

from shared.schemas import CaseCreateSchema
from tests.support.spoke import PASSWORD, case_body, csrf_of, services, sign_in_page

SCRIPT = '<script>alert("x")</script>'


def test_pages_need_sign_in(client: FlaskClient) -> None:
    answer = client.get("/")
    assert answer.status_code == 302 and "/signin" in answer.headers["Location"]


def test_session_cookie_is_httponly_and_lax(client: FlaskClient) -> None:
    page = client.get("/signin").get_data(as_text=True)
    answer = client.post(
        "/signin", data={"username": "clinic1", "password": PASSWORD, "csrf_token": csrf_of(page)}
    )
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_form_post_without_csrf_token_is_refused(client: FlaskClient) -> None:
    assert (
        client.post("/signin", data={"username": "clinic1", "password": PASSWORD}).status_code
        == 400
    )
    sign_in_page(client)
    answer = client.post(
        "/cases/new",
        data={
            "pseudonym": "P",
            "age": "3",
            "sex": "male",
            "complaint": "c",
            "question": "q",
            "specialty": "med",
        },
    )
    assert answer.status_code == 400
    assert services(client.application).store.count_pending() == 0


def test_doctor_of_another_spoke_is_refused_on_the_page(client: FlaskClient) -> None:
    page = client.get("/signin").get_data(as_text=True)
    answer = client.post(
        "/signin", data={"username": "clinic4", "password": PASSWORD, "csrf_token": csrf_of(page)}
    )
    assert answer.status_code == 401
    assert "Wrong username or password." in answer.get_data(as_text=True)  # as for a wrong one


def test_raise_a_case_on_the_form_and_see_it_escaped(client: FlaskClient) -> None:
    sign_in_page(client)
    form_page = client.get("/cases/new").get_data(as_text=True)
    assert "Orthopaedics" in form_page
    answer = client.post(
        "/cases/new",
        data={
            "csrf_token": csrf_of(form_page),
            "pseudonym": "PT-9",
            "age": "61",
            "sex": "male",
            "complaint": SCRIPT,
            "history": "<b>bold</b>",
            "question": "What now?",
            "specialty": "med",
            "priority": "urgent",
            "pulse": "90",
            "temperature_c": "37.8",
        },
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert SCRIPT not in page and "&lt;script&gt;" in page and "&lt;b&gt;bold" in page
    listing = client.get("/").get_data(as_text=True)
    assert "PT-9" in listing and "waiting" in listing
    # No worker runs in this test: the banner says the hub is out of reach and what waits.
    assert "1 case will be sent when the link is back" in listing


def test_invalid_form_shows_the_problems(client: FlaskClient) -> None:
    sign_in_page(client)
    form_page = client.get("/cases/new").get_data(as_text=True)
    answer = client.post(
        "/cases/new",
        data={
            "csrf_token": csrf_of(form_page),
            "pseudonym": SCRIPT,
            "age": "two",
            "sex": "male",
            "complaint": "",
            "question": "q",
            "specialty": "med",
            "pulse": "fast",
        },
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "Enter a number." in html and SCRIPT not in html
    assert services(client.application).store.count_pending() == 0


def test_case_page_shows_advice_printable_and_escaped(client: FlaskClient) -> None:
    store = services(client.application).store
    case = store.raise_case(CaseCreateSchema().load(case_body()), "clinic1")
    hub_case = {
        "id": 901,
        "uid": case["uid"],
        "token": "MED-0042",
        "accession_number": case["accession_number"],
        "status": "advised",
        "assigned_to": {"id": 1, "username": "med1", "name": "Dr. Med"},
        "queue_position": None,
    }
    advice = {
        "id": 77001,
        "uid": "adv-77001",
        "case_token": "MED-0042",
        "version": 1,
        "patient": {"pseudonym": "PT-0001", "age": 42, "sex": "female"},
        "specialist": {
            "username": "med1",
            "name": "Dr. Med Specialist",
            "qualification": "MD",
            "registration_number": "REG-MED1",
        },
        "assessment": SCRIPT,
        "recommendations": "Rest.",
        "disposition": "refer",
        "investigations": "",
        "prescriptions": [
            {
                "drug": "Ibuprofen",
                "strength": "400 mg",
                "dose": "1",
                "route": "oral",
                "frequency": "BD",
                "duration": "3 days",
                "instructions": "",
            }
        ],
        "follow_up_date": "2026-12-01",
        "issued_at": "2026-11-21T10:00:00+00:00",
    }
    store.handle_event(
        {"seq": 1, "type": "advice.issued", "case_id": 901, "case": hub_case, "advice": advice}
    )
    sign_in_page(client)
    page = client.get(f"/cases/{case['uid']}").get_data(as_text=True)
    for text in (
        "MED-0042",
        "Ibuprofen",
        "REG-MED1",
        "Dr. Med Specialist",
        "Refer",
        "2026-12-01",
        "&lt;script&gt;",
    ):
        assert text in page
    assert SCRIPT not in page
    assert client.get("/cases/no-such-uid").status_code == 404


def test_the_bridges_image_counts_show_on_the_case(client: FlaskClient) -> None:
    app = client.application
    case = services(app).store.raise_case(CaseCreateSchema().load(case_body()), "clinic1")
    token = {"Authorization": f"Bearer {services(app).settings.spoke_token}"}
    url = f"/api/v1/cases/{case['uid']}/images-progress"
    assert (
        client.put(
            url, json={"received": 5, "at_hub": 3, "rejected": -1}, headers=token
        ).status_code
        == 400
    )
    assert (
        client.put(url, json={"received": 5, "at_hub": 3, "rejected": 1}, headers=token).status_code
        == 200
    )
    assert client.put(url, json={"received": 5, "at_hub": 3, "rejected": 1}).status_code == 401
    sign_in_page(client)
    page = client.get(f"/cases/{case['uid']}").get_data(as_text=True)
    assert "3 of 5 at the hub" in page and "1 refused" in page
