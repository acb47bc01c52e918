"""Browser tests: Python Playwright driving Debian's Chromium (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

CHROMIUM = os.environ.get("TELECONSULT_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 820, "height": 1180}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install '.[test]')")
        raise
    need(
        shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists(),
        f"Chromium is not at {CHROMIUM} (apt-get install chromium)",
    )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: $TELECONSULT_SCREENSHOTS, else the test's tmp folder (never
    committed)."""
    folder = Path(os.environ.get("TELECONSULT_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def watch_console(page: Any, problems: list[str]) -> None:
    """Collect what the browser complains about: CSP violations, script errors."""
    page.on(
        "console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))

    def answered(response: Any) -> None:
        if response.status >= 400 or os.environ.get("TELECONSULT_E2E_TRACE"):
            problems.append(f"http {response.status}: {response.url}")

    page.on("response", answered)
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
