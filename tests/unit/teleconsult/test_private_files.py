"""Finding 13: the SQLite files (cases, password hashes), images, spools and keys were created
world-readable (0644, folders 0755). Now every component's data folder is 0700 and its database
files 0600, whatever the umask; folders and files made by an older version are tightened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from config.settings import load_settings
from dicom_bridge.progress import Ledger
from dicom_bridge.spool import Spool
from teleconsult.db import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual umask of a server, 022: what the process creates is world-readable by default."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_sqlite_database_and_its_wal_are_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "hub.sqlite"
    db = Database(f"sqlite:///{path}")
    with db.session() as session:
        session.execute(text("CREATE TABLE t (x TEXT)"))
        session.execute(text("INSERT INTO t VALUES ('password hash')"))
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
    assert (tmp_path / "data" / "hub.sqlite-wal").exists()
    assert mode(tmp_path / "data" / "hub.sqlite-wal") == 0o600
    assert mode(tmp_path / "data" / "hub.sqlite-shm") == 0o600
    db.dispose()


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    Database(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o600


def test_the_hub_keeps_its_data_images_database_and_secret_to_itself(tmp_path: Path) -> None:
    from hub.app import create_app

    data = tmp_path / "hub"
    create_app(test_config={"async_mode": "threading", "data_dir": str(data)})
    assert mode(data) == 0o700 and mode(data / "images") == 0o700
    assert mode(data / "hub.sqlite") == 0o600 and mode(data / "secret_key") == 0o600


def test_the_spoke_keeps_its_data_and_database_to_itself(tmp_path: Path) -> None:
    from spoke.app import create_app

    data = tmp_path / "spoke"
    settings = load_settings("spoke", environ={}, overrides={"data_dir": str(data)})
    app = create_app(settings)
    assert mode(data) == 0o700 and mode(data / "spoke.sqlite") == 0o600
    app.extensions["spoke"].db.dispose()


def test_the_bridge_spool_its_files_and_its_ledger_are_the_owners_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    path = spool.put(b"\x00" * 200, "1.2.3.4")
    ledger = Ledger(spool.root / "progress.sqlite")
    ledger.receive([("1.2.3.4", "ACC-1")])
    for folder in (spool.root, spool.incoming_dir, spool.tmp_dir, spool.rejected_dir):
        assert mode(folder) == 0o700, folder
    assert mode(path) == 0o600
    assert mode(spool.root / "progress.sqlite") == 0o600
    ledger.close()
    spool.close()


def test_a_setting_can_come_from_a_file_instead_of_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "spoke_token"
    secret.write_text("tok-123\n")
    env = {"TELECONSULT_SPOKE_SPOKE_TOKEN_FILE": str(secret)}
    assert load_settings("spoke", environ=env).spoke_token == "tok-123"
    with pytest.raises(ValueError, match="TELECONSULT_SPOKE_SPOKE_TOKEN_FILE"):
        load_settings("spoke", environ={"TELECONSULT_SPOKE_SPOKE_TOKEN_FILE": str(tmp_path / "x")})
