"""Languages of the pages (English, Hindi, Vietnamese, Russian) with Flask-Babel.

The catalogs are text (``teleconsult/translations/<lang>/LC_MESSAGES/messages.po``); they are
compiled to
``.mo`` at app start into a temporary folder, so no binary is kept in the repository.
"""

from __future__ import annotations

import atexit
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request, session
from flask_babel import Babel, get_locale, gettext, lazy_gettext

log = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = {"en": "English", "hi": "हिन्दी", "vi": "Tiếng Việt", "ru": "Русский"}
SESSION_KEY = "lang"


def compile_catalogs(source: Path = TRANSLATIONS, target: Path | None = None) -> Path:
    """Compile every ``.po`` under ``source`` to ``.mo`` under ``target``; returns ``target``."""
    if target is None:
        target = Path(tempfile.mkdtemp(prefix="teleconsult-i18n-"))
        atexit.register(shutil.rmtree, target, ignore_errors=True)
    for po in source.glob("*/LC_MESSAGES/*.po"):
        mo = target / po.relative_to(source).with_suffix(".mo")
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as src:
            catalog = read_po(src, locale=po.parts[-3])
        with mo.open("wb") as out:
            write_mo(out, catalog, use_fuzzy=False)
    return target


_compiled: Path | None = None


def init_babel(app: Flask, user_language: Callable[[], str | None]) -> None:
    """Flask-Babel with the user's language: their saved choice, else the session's, else the
    browser's."""
    global _compiled
    if _compiled is None:
        _compiled = compile_catalogs()

    def select() -> str:
        chosen = _safe(user_language) or session.get(SESSION_KEY)
        if chosen in LANGUAGES:
            return str(chosen)
        return request.accept_languages.best_match(list(LANGUAGES)) or "en"

    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(_compiled)
    Babel(app, locale_selector=select)
    app.jinja_env.globals.update(
        LANGUAGES=LANGUAGES,
        get_locale=lambda: str(get_locale() or "en"),
        specialty_label=specialty_label,
    )
    app.jinja_env.filters["specialty_label"] = specialty_label


def _safe(fn: Callable[[], str | None]) -> str | None:
    try:
        return fn()
    except Exception:  # no database or no user: fall back to the session or the browser
        log.debug("no user language", exc_info=True)
        return None


# -- specialty names
# The names of the default specialties (shared.enums.DEFAULT_SPECIALTIES) in the user's language;
# a specialty an admin added later shows the name it was given.
_SPECIALTY_NAMES = {
    "ortho": lazy_gettext("Orthopaedics"),
    "radio": lazy_gettext("Radiology"),
    "med": lazy_gettext("General medicine"),
    "ent": lazy_gettext("Ear, nose and throat"),
    "eye": lazy_gettext("Ophthalmology"),
}


def specialty_label(code: str, fallback: str | None = None) -> str:
    """A specialty's name in the user's language (by its code), else ``fallback`` or the code."""
    name = _SPECIALTY_NAMES.get(code)
    return str(name) if name is not None else (fallback or code)


# -- validation messages ---------------------------------------------------------------------------
# marshmallow's default messages, as they read once formatted, and what the user is told instead.
_VALIDATION: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^Missing data for required field\.$"), lambda m: gettext("Required.")),
    (re.compile(r"^Field may not be null\.$"), lambda m: gettext("Required.")),
    (re.compile(r"^Shorter than minimum length 1\.$"), lambda m: gettext("Required.")),
    (
        re.compile(r"^Length must be between (\d+) and (\d+)\.$"),
        lambda m: gettext("Enter %(min)s to %(max)s characters.", min=m[1], max=m[2]),
    ),
    (
        re.compile(r"^Shorter than minimum length (\d+)\.$"),
        lambda m: gettext("At least %(n)s characters.", n=m[1]),
    ),
    (
        re.compile(r"^Longer than maximum length (\d+)\.$"),
        lambda m: gettext("At most %(n)s characters.", n=m[1]),
    ),
    (
        re.compile(r"^Must be one of: (.*)\.$"),
        lambda m: gettext("Choose one of: %(choices)s.", choices=m[1]),
    ),
    (
        re.compile(r"^Must be greater than or equal to (\S+) and less than or equal to (\S+)\.$"),
        lambda m: gettext("Enter a value from %(min)s to %(max)s.", min=m[1], max=m[2]),
    ),
    (re.compile(r"^Not a valid (integer|number)\.$"), lambda m: gettext("Enter a number.")),
    (re.compile(r"^Not a valid date\.$"), lambda m: gettext("Enter a date (YYYY-MM-DD).")),
    (re.compile(r"^Not a valid string\.$"), lambda m: gettext("Enter text.")),
    (re.compile(r"^Unknown field\.$"), lambda m: gettext("Unknown field.")),
    (
        re.compile(r"^Some fields are missing or invalid\.$"),
        lambda m: gettext("Some fields are missing or invalid: see the marked fields."),
    ),
]


def translate_message(message: str) -> str:
    """A validation message in the user's language (the request's locale); others unchanged."""
    for pattern, say in _VALIDATION:
        found = pattern.match(message)
        if found:
            return say(found)
    return message


def translate_fields(fields: Any) -> Any:
    """The same nesting of field errors as marshmallow gives, each message translated."""
    if isinstance(fields, dict):
        return {key: translate_fields(value) for key, value in fields.items()}
    if isinstance(fields, list):
        return [translate_fields(value) for value in fields]
    return translate_message(fields) if isinstance(fields, str) else fields
