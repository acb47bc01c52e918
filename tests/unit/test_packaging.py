"""A built wheel carries what the components load at run time, not only their Python modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_templates_static_files_migrations_config_and_translations(
    tmp_path: Path,
) -> None:
    source = (
        tmp_path / "src"
    )  # an in-tree build writes build/ and *.egg-info: not into the checkout
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "venv",
            "node_modules",
            "build",
            "*.egg-info",
            "__pycache__",
            "teleconsult-data",
        ),
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    for expected in (
        "config/hub.toml",
        "config/spoke.toml",
        "config/bridge.toml",
        "hub/templates/login.html",
        "hub/static/hub.css",
        "hub/static/js/case.js",
        "hub/persistence/migrations/env.py",
        "hub/persistence/migrations/versions/0002_clinical_workflow.py",
        "spoke/templates/case.html",
        "spoke/static/spoke.css",
        "spoke/persistence/migrations/env.py",
        "teleconsult/translations/hi/LC_MESSAGES/messages.po",
        "deploy/cluster.py",
        "deploy/nginx.conf.j2",
        "deploy/systemd/teleconsult-hub@.service",
    ):
        assert expected in names, expected
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
