"""What every component's process does the same way: command-line overrides, logging, secrets."""

from __future__ import annotations

import argparse
import logging
import secrets
from pathlib import Path

from config.settings import Settings, load_settings
from shared.deid import Profile
from teleconsult.files import read_or_create_key, write_secret


def settings_from_argv(component: str, argv: list[str] | None) -> Settings:
    """Settings of ``component`` with ``--host``/``--port`` from the command line on top."""
    parser = argparse.ArgumentParser(prog=f"teleconsult {component}")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings(component, overrides=overrides)
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s {component} %(levelname)s %(name)s: %(message)s",
    )
    return settings


def secret_key(settings: Settings) -> str:
    """The configured secret, or one generated on first start and kept in data_dir (mode 0600)."""
    if settings.secret_key:
        return str(settings.secret_key)
    path = Path(settings.data_dir) / "secret_key"
    if not path.exists():
        write_secret(path, secrets.token_urlsafe(48))
    return path.read_text().strip()


def deid_profile(settings: Settings, key_dir: Path) -> Profile | None:
    """The de-identification the settings ask for (bridge and spoke alike), or None.

    An empty ``deid_key``: a random key kept in ``key_dir/deid.key``. A clinic whose bridge and
    spoke page both de-identify should give both the same ``deid_key``, so that one patient
    keeps one pseudonym whichever way the images came.
    """
    if not settings.deidentify:
        return None
    key = str(settings.deid_key or "").encode() or read_or_create_key(key_dir / "deid.key")
    return Profile(
        key=key,
        shift_dates=bool(settings.deid_shift_dates),
        allow_burned_in=bool(settings.deid_allow_burned_in),
    )
