"""The clinic doctor's pages in English, Hindi, Vietnamese and Russian, chosen per user."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import update

from hub.persistence.models import User
from spoke.app import CSP
from teleconsult.db import Database
from tests.support.hub import RunningHub
from tests.support.spoke import csrf_of, services, sign_in_page


def choose(client: FlaskClient, language: str, page: str = "/") -> str:
    """Pick ``language`` with the chooser of ``page``; returns the page it leads back to."""
    html = client.get(page).get_data(as_text=True)
    answer = client.post(
        "/language", data={"language": language, "next": page, "csrf_token": csrf_of(html)}
    )
    assert answer.status_code == 302 and answer.headers["Location"].endswith(page)
    return client.get(page).get_data(as_text=True)


def test_english_is_the_default(client: FlaskClient) -> None:
    sign_in_page(client)
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page and "Cases of PHC-1" in page and "Raise a case" in page
    assert 'action="/language"' in page and '<option value="ru" lang="ru" >Русский</option>' in page


def test_russian_case_list_and_new_case_form(client: FlaskClient) -> None:
    sign_in_page(client)
    listing = choose(client, "ru")
    assert '<html lang="ru">' in listing
    assert "Случаи клиники PHC-1" in listing and "Создать случай" in listing and "Выход" in listing
    assert (
        "Входящие изображения" in listing
        and "Случаев пока нет." in listing
        and "Cases of PHC-1" not in listing
    )
    form = client.get("/cases/new").get_data(as_text=True)
    assert "Основная жалоба" in form and "Вопрос специалисту" in form and "Возраст (лет)" in form
    assert "Частота дыхания (/мин)" in form and "женский" in form and "планово" in form
    assert "Chief complaint" not in form
    # form field names and ids are unchanged
    assert 'name="complaint"' in form and 'id="draft-note"' in form and 'name="pseudonym"' in form


def test_the_choice_survives_the_next_requests_and_a_new_sign_in(client: FlaskClient) -> None:
    sign_in_page(client)
    choose(client, "ru", "/cases/new")
    assert "Случаи клиники PHC-1" in client.get("/").get_data(as_text=True)
    assert "Входящие изображения" in client.get("/inbox").get_data(as_text=True)
    signout = client.get("/").get_data(as_text=True)
    client.post("/signout", data={"csrf_token": csrf_of(signout)})
    assert "Имя пользователя" in client.get("/signin").get_data(as_text=True)
    sign_in_page(client)
    assert "Случаи клиники PHC-1" in client.get("/").get_data(as_text=True)


def test_a_raised_case_in_russian(client: FlaskClient) -> None:
    sign_in_page(client)
    form = choose(client, "ru", "/cases/new")
    answer = client.post(
        "/cases/new",
        data={
            "csrf_token": csrf_of(form),
            "pseudonym": "PT-7",
            "age": "30",
            "sex": "female",
            "complaint": "Кашель",
            "question": "Что делать?",
            "specialty": "med",
            "priority": "urgent",
        },
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    case = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert (
        "Ожидает отправки в центр." in case
        and "Сообщение специалисту" in case
        and "PT-7, возраст 30, женский" in case
    )
    listing = client.get("/").get_data(as_text=True)
    assert (
        "PT-7" in listing
        and "срочно" in listing
        and "ожидает" in listing
        and "Отправлен в центр" in listing
    )
    assert "1 случай будет отправлен, когда связь восстановится." in listing


def test_hindi_and_vietnamese_render(client: FlaskClient) -> None:
    sign_in_page(client)
    hindi = choose(client, "hi", "/cases/new")
    assert '<html lang="hi">' in hindi and "मुख्य शिकायत" in hindi and "केस दर्ज करें" in hindi
    vietnamese = choose(client, "vi", "/cases/new")
    assert (
        '<html lang="vi">' in vietnamese
        and "Lý do khám chính" in vietnamese
        and "Tạo ca bệnh" in vietnamese
    )


def test_browser_language_when_nothing_is_chosen(client: FlaskClient) -> None:
    page = client.get("/signin", headers={"Accept-Language": "vi,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="vi">' in page and "Tên đăng nhập" in page and "Đăng nhập" in page


def test_an_unknown_language_or_a_foreign_target_is_ignored(client: FlaskClient) -> None:
    sign_in_page(client)
    html = client.get("/").get_data(as_text=True)
    answer = client.post(
        "/language", data={"language": "xx", "next": "//evil.example/", "csrf_token": csrf_of(html)}
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    assert "Cases of PHC-1" in client.get("/").get_data(as_text=True)


def test_choosing_needs_the_csrf_token(client: FlaskClient) -> None:
    assert client.post("/language", data={"language": "ru", "next": "/signin"}).status_code == 400
    assert "Username" in client.get("/signin").get_data(as_text=True)


def test_translated_pages_keep_the_csp(client: FlaskClient) -> None:
    sign_in_page(client)
    for page in (choose(client, "ru", "/cases/new"), client.get("/").get_data(as_text=True)):
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script"
        assert (
            "<style" not in page and " style=" not in page and not re.search(r"\son[a-z]+=", page)
        )
    answer = client.get("/")
    assert answer.headers["Content-Security-Policy"] == CSP and "default-src 'self'" in CSP


def test_the_language_saved_at_the_hub_applies_at_sign_in(
    client: FlaskClient, hub: RunningHub
) -> None:
    db = Database(hub.database_url)
    with db.session() as s:
        s.execute(update(User).where(User.username == "clinic2").values(language="vi"))
    db.dispose()
    sign_in_page(client, "clinic2")
    page = client.get("/cases/new").get_data(as_text=True)
    assert '<html lang="vi">' in page and "Tạo ca bệnh" in page


def test_the_polled_banner_comes_translated(client: FlaskClient) -> None:
    sign_in_page(client)
    choose(client, "ru")
    services(client.application).outbox.hub_reachable = False
    banner = client.get("/live").get_json()["banner"]
    assert "banner offline" in banner and "The hub cannot be reached" not in banner


def test_each_doctor_keeps_their_own_language_on_any_browser(
    app: object, client: FlaskClient
) -> None:
    from flask import Flask

    assert isinstance(app, Flask)
    sign_in_page(client, "clinic1")
    choose(client, "hi")
    client.post("/signout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True))})
    # Another doctor on the same browser gets their own language, not the one left behind ...
    sign_in_page(client, "clinic2")
    assert spoke_language(app, "clinic2") != "hi"
    choose(client, "vi")
    client.post("/signout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True))})
    sign_in_page(client, "clinic2")
    assert '<html lang="vi">' in client.get("/").get_data(as_text=True)
    # ... and clinic1, on another browser, finds Hindi again.
    other = app.test_client()
    sign_in_page(other, "clinic1")
    page = other.get("/").get_data(as_text=True)
    assert '<html lang="hi">' in page
    third = app.test_client()
    sign_in_page(third, "clinic2")
    assert '<html lang="vi">' in third.get("/").get_data(as_text=True)


def spoke_language(app: object, username: str) -> str | None:
    doctor = services(app).accounts.doctor(username)  # type: ignore[arg-type]
    return doctor.language if doctor else None


def test_the_new_case_form_says_what_is_missing_in_the_doctors_language(
    client: FlaskClient,
) -> None:
    sign_in_page(client)
    form = choose(client, "ru", "/cases/new")
    answer = client.post(
        "/cases/new",
        data={
            "csrf_token": csrf_of(form),
            "pseudonym": "PT-8",
            "age": "30",
            "sex": "female",
            "specialty": "ortho",
            "priority": "urgent",
            "question": "?",
        },
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    errors = re.findall(r"class=\"(?:field-error|error)\"[^>]*>([^<]*)<", page)
    assert "Введите от 1 до 4000 символов." in errors, errors
    assert "Missing data for required field." not in page
    assert "Ортопедия" in page  # the specialty names too
