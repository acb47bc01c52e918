"""Fixtures shared by every test. Under CI=true nothing that needs a real peer may skip."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_database, postgres_available

IN_CI = os.environ.get("CI", "").lower() == "true"


def need(available: bool, why: str) -> None:
    """Skip on a laptop without the peer; under CI=true, fail instead."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {why}")
    pytest.skip(why)


def need_tool(name: str) -> str:
    """A DCMTK tool from the system, never pynetdicom's same-named apps in the venv."""
    path = shutil.which(name, path="/usr/bin:/usr/local/bin")
    need(path is not None, f"{name} is not installed (Debian package dcmtk)")
    assert path is not None
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind the hub runs on."""
    if request.param == "postgresql":
        need(postgres_available(), "PostgreSQL is not reachable on 127.0.0.1:5432")
    with fresh_database(request.param, tmp_path) as url:
        yield url
