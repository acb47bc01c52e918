"""A durable spool directory: an instance is on disk, fsynced, before the modality hears success.

Layout under ``root``: ``tmp/`` (being written, never forwarded), ``incoming/<SOPInstanceUID>.dcm``
(complete, waiting for the hub) and ``rejected/`` (refused by the hub, with a ``.reason.txt``).
A file only ever appears in ``incoming/`` by an atomic rename, so a crash cannot leave a half
file that looks whole.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

SUFFIX = ".dcm"
REASON_SUFFIX = ".reason.txt"
# A DICOM UID: digits and dots, at most 64 characters. Checked because it becomes a file name.
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class InvalidInstanceError(ValueError):
    """The instance cannot be spooled: no usable SOPInstanceUID or no data."""


def is_valid_uid(uid: str) -> bool:
    """Return True if ``uid`` is a well-formed DICOM UID (safe to use as a file name)."""
    return len(uid) <= 64 and _UID_RE.match(uid) is not None


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (no-op if it cannot be opened)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:  # e.g. Windows: directory entries are durable with the file
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(directory: Path, prefix: str, data: bytes) -> Path:
    """Write ``data`` to a new unique file in ``directory`` and fsync it; return its path."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def sop_instance_uid_of(data: bytes) -> str:
    """Read the SOPInstanceUID from encoded DICOM ``data`` (for callers that lack the request)."""
    from pydicom import dcmread  # only needed off the C-STORE path
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        return str(ds.SOPInstanceUID)
    except (InvalidDicomError, AttributeError, EOFError, ValueError) as exc:
        raise InvalidInstanceError(f"no SOPInstanceUID in the data: {exc}") from exc


class Spool:
    """Durable queue of DICOM instances between the C-STORE handler and the forwarder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.incoming_dir = self.root / "incoming"
        self.rejected_dir = self.root / "rejected"
        self._lock = threading.Lock()
        for directory in (self.tmp_dir, self.incoming_dir, self.rejected_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._clean_tmp()

    def _clean_tmp(self) -> None:
        """Remove writes a crash interrupted: the modality never got success for them."""
        removed = 0
        for leftover in self.tmp_dir.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
        if removed:
            _fsync_dir(self.tmp_dir)
            logger.warning("removed %d unfinished spool file(s) from %s", removed, self.tmp_dir)

    def path_for(self, sop_instance_uid: str) -> Path:
        """Return where the instance ``sop_instance_uid`` waits in ``incoming/``."""
        return self.incoming_dir / f"{sop_instance_uid}{SUFFIX}"

    def put(self, data: bytes, sop_instance_uid: str | None = None) -> Path:
        """Spool one encoded instance durably; a second put of the same UID is a no-op success.

        ``sop_instance_uid`` should come from the C-STORE request; if absent it is read from
        ``data``. Raises InvalidInstanceError for unusable input and OSError if the disk fails.
        """
        if not data:
            raise InvalidInstanceError("empty dataset")
        uid = (sop_instance_uid or sop_instance_uid_of(data)).strip().rstrip("\x00")
        if not is_valid_uid(uid):
            raise InvalidInstanceError(f"invalid SOPInstanceUID {uid!r}")
        final = self.path_for(uid)
        if final.exists():
            logger.info("instance %s already spooled", uid)
            return final
        tmp = _write_durably(self.tmp_dir, uid + ".", data)
        try:
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.incoming_dir)
        return final

    def pending(self, limit: int | None = None) -> list[Path]:
        """Return up to ``limit`` spooled instances, oldest first."""
        entries: list[tuple[int, str, Path]] = []
        with os.scandir(self.incoming_dir) as it:
            for entry in it:
                if not entry.name.endswith(SUFFIX) or not entry.is_file():
                    continue
                try:
                    mtime = entry.stat().st_mtime_ns
                except FileNotFoundError:  # removed while listing
                    continue
                entries.append((mtime, entry.name, Path(entry.path)))
        entries.sort()
        paths = [path for _, _, path in entries]
        return paths if limit is None else paths[:limit]

    def count(self) -> int:
        """Return the number of instances waiting for the hub."""
        with os.scandir(self.incoming_dir) as it:
            return sum(1 for entry in it if entry.name.endswith(SUFFIX))

    def rejected(self) -> list[Path]:
        """Return the instances the hub refused (kept for a human to look at)."""
        return sorted(p for p in self.rejected_dir.iterdir() if p.name.endswith(SUFFIX))

    def done(self, path: Path) -> None:
        """Forget an instance the hub confirmed it stored."""
        Path(path).unlink(missing_ok=True)
        _fsync_dir(self.incoming_dir)

    def reject(self, path: Path, reason: str) -> Path:
        """Move an instance the hub refused to ``rejected/`` with the reason beside it."""
        path = Path(path)
        target = self.rejected_dir / path.name
        reason_file = self.rejected_dir / (path.name[: -len(SUFFIX)] + REASON_SUFFIX)
        with self._lock:
            # Reason first: a crash in between leaves the instance in incoming/, so it is retried.
            tmp = _write_durably(self.tmp_dir, "reason.", (reason.rstrip() + "\n").encode())
            os.replace(tmp, reason_file)
            os.replace(path, target)
        _fsync_dir(self.rejected_dir)
        _fsync_dir(self.incoming_dir)
        logger.warning("instance %s rejected: %s (kept in %s)", path.stem, reason, target)
        return target
