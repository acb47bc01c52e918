"""The catalogs in teleconsult/translations are complete: every string the pages mark for
translation (extracted from the code as babel.cfg says) has a translation in every language, with
the same placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from teleconsult.i18n import LANGUAGES, TRANSLATIONS

ROOT = Path(__file__).resolve().parents[2]


def extracted() -> Catalog:
    """What ``pybabel extract -F babel.cfg -k lazy_gettext`` finds."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
    catalog = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(
        ROOT, method_map, options_map, keywords=keywords
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


@pytest.fixture(scope="module")
def template() -> Catalog:
    found = extracted()
    assert len(found) > 200  # the pages of hub and spoke: a broken extraction finds few
    return found


@pytest.mark.parametrize("language", [code for code in LANGUAGES if code != "en"])
def test_every_marked_string_is_translated(template: Catalog, language: str) -> None:
    path = TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    missing = []
    for message in template:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        found = catalog.get(key)
        strings = found.string if found is not None else None
        if not strings or (isinstance(strings, tuple) and not all(strings)):
            missing.append(key)
    assert not missing, f"{len(missing)} strings without a {language} translation: {missing}"
    catalog.update(template)  # the checkers need python-format flags as the code has them
    problems = [
        (message.id, [str(e) for e in errors])
        for message, errors in catalog.check()
        if errors and not message.fuzzy
    ]
    assert not problems, problems
