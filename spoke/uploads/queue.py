"""The durable queue of uploaded instances on disk, per case.

``<root>/c-<case hash>/<key>.dcm`` waits to be sent and ``<key>.json`` says what it is and where
it stands; refused instances go to ``refused/`` beside them. ``key`` and the case hash are
hashes the spoke makes of the SOPInstanceUID and of the case uid: no file name ever comes from
what a client sent, so a crafted UID (``/abs/path``, ``../../``) can name nothing outside the
case's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.dicom import is_valid_uid
from spoke.uploads.convert import Instance
from teleconsult.files import fsync_dir, private_dir, write_durably

WAITING, AT_HUB, REFUSED = "waiting", "at_hub", "refused"
_CASE_UID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def file_key(sop_uid: str) -> str:
    """The name an instance's files get: the same SOP instance twice is one entry."""
    return hashlib.sha256(sop_uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def _key(record: dict[str, Any]) -> str:
    key = str(record.get("key") or "")
    if re.fullmatch(r"[0-9a-f]{40}", key):
        return key
    legacy = str(record.get("sop_uid") or "")
    if "key" not in record and is_valid_uid(legacy):
        return legacy  # queued before files were named by hash: a checked UID, digits and dots
    raise ValueError("an upload record without a valid key")


class UploadQueue:
    """What was uploaded per case and where each instance stands (waiting, at the hub, refused)."""

    def __init__(self, root: Path) -> None:
        self.changes = 0
        self.root = Path(root)
        self._lock = threading.Lock()

    def folder_of(self, case_uid: str) -> Path:
        """The folder of a case's uploads: named by a hash of the case uid (a case raised through
        the hub's API may carry a uid its client chose), or by the uid itself for a folder an
        older spoke made."""
        if not _CASE_UID.fullmatch(case_uid):
            raise ValueError("not a case uid")
        legacy = self.root / case_uid
        if legacy.is_dir():
            return legacy
        return self.root / ("c-" + file_key(case_uid))

    _case_dir = folder_of

    def add(self, case_uid: str, instance: Instance, now: datetime) -> None:
        folder = self._case_dir(case_uid)
        private_dir(folder)
        key = file_key(instance.sop_uid)
        write_durably(folder / f"{key}.dcm", instance.data)
        record = {
            "key": key,
            "case_uid": case_uid,
            "sop_uid": instance.sop_uid,
            "sop_class": instance.sop_class,
            "kind": instance.kind,
            "name": instance.name,
            "state": WAITING,
            "reason": None,
            "attempts": 0,
            "added_at": now.isoformat(),
            "done_at": None,
        }
        self._save(folder, record)

    def records(self, case_uid: str) -> list[dict[str, Any]]:
        """What was uploaded for a case, oldest first."""
        try:
            folder = self._case_dir(case_uid)
        except ValueError:
            return []
        return self._read(folder)

    def _read(self, folder: Path) -> list[dict[str, Any]]:
        found = []
        for path in folder.glob("*.json") if folder.is_dir() else ():
            try:
                record = json.loads(path.read_text("utf-8"))
                _key(record)
            except (OSError, ValueError):
                continue
            found.append(record)
        return sorted(found, key=lambda r: (str(r.get("added_at")), str(r.get("name"))))

    def waiting(self) -> dict[str, list[dict[str, Any]]]:
        """Waiting records per case uid."""
        result: dict[str, list[dict[str, Any]]] = {}
        if not self.root.is_dir():
            return result
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if not any(folder.glob("*.dcm")):
                continue  # everything of this case was confirmed or refused: no need to read it
            for record in self._read(folder):
                if record.get("state") == WAITING:
                    case_uid = str(record.get("case_uid") or folder.name)  # older: named by uid
                    result.setdefault(case_uid, []).append(record)
        return result

    def data(self, case_uid: str, record: dict[str, Any]) -> bytes:
        return (self._case_dir(case_uid) / f"{_key(record)}.dcm").read_bytes()

    def confirmed(self, case_uid: str, record: dict[str, Any], now: datetime) -> None:
        folder = self._case_dir(case_uid)
        self._save(folder, {**record, "state": AT_HUB, "reason": None, "done_at": now.isoformat()})
        (folder / f"{_key(record)}.dcm").unlink(missing_ok=True)
        fsync_dir(folder)

    def refused(self, case_uid: str, record: dict[str, Any], reason: str, now: datetime) -> None:
        folder = self._case_dir(case_uid)
        aside = folder / "refused"
        aside.mkdir(mode=0o700, exist_ok=True)
        source = folder / f"{_key(record)}.dcm"
        if source.exists():
            os.replace(source, aside / source.name)
            fsync_dir(aside)
        self._save(
            folder, {**record, "state": REFUSED, "reason": reason, "done_at": now.isoformat()}
        )

    def failed_attempt(self, case_uid: str, record: dict[str, Any], reason: str) -> None:
        record.update(attempts=int(record.get("attempts") or 0) + 1, last_error=reason)
        self._save(self._case_dir(case_uid), record)

    def _save(self, folder: Path, record: dict[str, Any]) -> None:
        with self._lock:
            write_durably(folder / f"{_key(record)}.json", json.dumps(record).encode())
            self.changes += 1  # the pages redraw when this moves
