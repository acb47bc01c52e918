"""The pin of pynetdicom in setup.cfg, the range the compat module was tested with, and the
version installed agree: an upgrade past the tested range fails here first."""

from __future__ import annotations

import configparser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from dicom_bridge import pynetdicom_compat

ROOT = Path(__file__).resolve().parents[3]


def _pinned() -> SpecifierSet:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    (line,) = [ln for ln in lines if ln.strip().startswith("pynetdicom")]
    return Requirement(line.strip()).specifier


def test_setup_cfg_pins_the_tested_range_and_it_is_what_runs() -> None:
    tested = SpecifierSet(",".join(pynetdicom_compat.TESTED_VERSIONS))
    assert _pinned() == tested
    assert pynetdicom_compat.PYNETDICOM_VERSION in tested
