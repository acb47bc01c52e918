"""A durable spool directory: an instance is on disk, fsynced, before the modality hears success.

Layout under ``root``: ``tmp/`` (being written, never forwarded), ``incoming/<SOPInstanceUID>.dcm``
(complete, waiting for the hub) and ``rejected/`` (refused by the hub, with a ``.reason.txt``).
A file only ever gets its name in ``incoming/`` once it is whole, so a crash cannot leave a half
file that looks whole.

On Linux a file is written nameless (``O_TMPFILE``), given its final name (``linkat``) and then
fsynced once: on a journaling file system (ext4, XFS, btrfs) that one fsync commits the data and
the name together, which saves the directory fsync per instance. Elsewhere: write a temporary
file, fsync, rename, fsync the directory.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import secrets
import sys
import tempfile
import threading
from collections.abc import Sequence
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


def _write_all(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """Write every part (no joining: an instance is not copied once more just to be written)."""
    views = [memoryview(p) for p in parts]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


# O_TMPFILE + linkat needs Linux, a file system that has it, and /proc to name the open file.
_HAVE_TMPFILE = sys.platform.startswith("linux") and hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT}


def _link_durably(directory: Path, final: Path, parts: Sequence[bytes | memoryview], sync: bool) -> bool:
    """Write ``parts`` as ``final`` in one step that never shows a partial file; False if not possible.

    Raises FileExistsError if ``final`` appeared meanwhile.
    """
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o644)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return False
        raise
    try:
        _write_all(fd, parts)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:  # a dir fd makes CPython call linkat(AT_SYMLINK_FOLLOW), not link()
            os.link(f"/proc/self/fd/{fd}", final.name, dst_dir_fd=dir_fd, follow_symlinks=True)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.ENOENT):
                return False
            raise
        finally:
            os.close(dir_fd)
        if sync:
            os.fsync(fd)  # fsync, not fdatasync: the new link is inode metadata too
    finally:
        os.close(fd)
    return True


def read_or_create_key(path: Path) -> bytes:
    """A secret kept in ``path`` (created once, readable by the owner only)."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32).encode()
    tmp = _write_durably(path.parent, ".key.", key)
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # never replaces a key another process wrote meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path.read_bytes().strip()


def _write_durably(directory: Path, prefix: str, data: bytes, sync: bool = True) -> Path:
    """Write ``data`` to a new unique file in ``directory`` and fsync it; return its path."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync:
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

    def __init__(self, root: str | os.PathLike[str], fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync  # False only for benchmarks: success would no longer mean "on disk"
        self._tmpfile = _HAVE_TMPFILE
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

    def put(self, data: bytes | Sequence[bytes | memoryview], sop_instance_uid: str | None = None) -> Path:
        """Spool one encoded instance durably; a second put of the same UID is a no-op success.

        ``data`` is the Part 10 bytes, or its pieces in order (written without joining them).
        ``sop_instance_uid`` should come from the C-STORE request; if absent it is read from
        ``data``. Raises InvalidInstanceError for unusable input and OSError if the disk fails.
        """
        parts = [data] if isinstance(data, bytes | memoryview) else list(data)
        if not any(len(p) for p in parts):
            raise InvalidInstanceError("empty dataset")
        if not sop_instance_uid:
            sop_instance_uid = sop_instance_uid_of(b"".join(parts))
        uid = sop_instance_uid.strip().rstrip("\x00")
        if not is_valid_uid(uid):
            raise InvalidInstanceError(f"invalid SOPInstanceUID {uid!r}")
        final = self.path_for(uid)
        if final.exists():
            if _differs(final, parts):
                logger.warning(
                    "instance %s arrived again with different content: the first is kept "
                    "(a corrected image needs a new SOPInstanceUID)", uid)
            else:
                logger.info("instance %s already spooled", uid)
            return final
        try:
            if self._tmpfile and _link_durably(self.incoming_dir, final, parts, self.fsync):
                return final
        except FileExistsError:
            return final  # the same instance, spooled by another association meanwhile
        self._tmpfile = False
        tmp = _write_durably(self.tmp_dir, uid + ".", b"".join(parts), self.fsync)
        try:
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self.fsync:
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


def _differs(path: Path, parts: list[bytes | memoryview]) -> bool:
    """Whether a spooled file's bytes differ from ``parts`` (checked only for a duplicate)."""
    try:
        if path.stat().st_size != sum(len(p) for p in parts):
            return True
        return path.read_bytes() != b"".join(bytes(p) for p in parts)
    except OSError:
        return False
