"""A durable spool directory: an instance is on disk, fsynced, before the modality hears success.

Layout under ``root``: ``tmp/`` (being written, never forwarded), ``incoming/u-<hex>.dcm``
(complete, waiting for the hub; ``<hex>`` is the SOPInstanceUID's ASCII in hexadecimal: a name
the bridge makes, of hex digits only, whatever a modality sent, yet the UID reads back from it)
and ``rejected/`` (refused by the hub, with a ``.reason.txt``).
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
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from shared.dicom import is_valid_uid
from teleconsult.files import fsync_dir, private_dir, start_writeback, write_durably

logger = logging.getLogger(__name__)

SUFFIX = ".dcm"
REASON_SUFFIX = ".reason.txt"
_NAME_PREFIX = "u-"


class InvalidInstanceError(ValueError):
    """The instance cannot be spooled: no usable SOPInstanceUID or no data."""


def file_name(uid: str) -> str:
    """The spool's name of the instance ``uid``: made by the bridge, hex digits only."""
    return _NAME_PREFIX + uid.encode("ascii").hex() + SUFFIX


def uid_of(path: Path) -> str:
    """The SOPInstanceUID of the spooled file ``path`` (also of a file spooled under its UID by
    an older bridge)."""
    stem = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name
    if stem.startswith(_NAME_PREFIX):
        try:
            return bytes.fromhex(stem[len(_NAME_PREFIX) :]).decode("ascii")
        except ValueError:
            return stem
    return stem


# O_TMPFILE + linkat needs Linux, a file system that has it, and /proc to name the open file.
_HAVE_TMPFILE = (
    sys.platform.startswith("linux") and hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
)
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT}
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOENT}
_MAX_SPARES = 8  # about one per association that is receiving at once


def _open_nameless(directory: Path) -> int:
    """Open a new file without a name in ``directory`` (O_TMPFILE); -1 if the system has none."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return -1
        raise


def sop_instance_uid_of(data: bytes) -> str:
    """Read the SOPInstanceUID from encoded DICOM ``data`` (for callers that lack the request)."""
    from pydicom import dcmread  # only needed off the C-STORE path
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        return str(ds.SOPInstanceUID)
    except (InvalidDicomError, AttributeError, EOFError, ValueError) as exc:
        raise InvalidInstanceError(f"no SOPInstanceUID in the data: {exc}") from exc


class SpoolWriter:
    """One instance being written into the spool as it arrives; it gets its name only in commit().

    On Linux the file has no name until then (O_TMPFILE), so an abort or a crash mid-instance leaves
    nothing behind; elsewhere it is written in ``tmp/``, which the next start empties.
    """

    def __init__(self, spool: Spool, uid: str) -> None:
        self.spool = spool
        self.uid = uid
        self.final = spool.path_for(uid)
        self.size = 0
        self._tmp: Path | None = None
        self._fd = spool._nameless_file() if spool._tmpfile else -1
        if self._fd < 0:
            spool._tmpfile = False
            fd, name = tempfile.mkstemp(dir=spool.tmp_dir, suffix=".part")
            self._fd, self._tmp = fd, Path(name)

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data`` (written whole; an OSError, e.g. a full disk, propagates)."""
        view = memoryview(data)
        start = self.size
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self.size += written
        if self.spool.fsync:
            start_writeback(self._fd, start, self.size - start)

    def commit(self) -> Path:
        """Name the file ``incoming/<uid>.dcm`` and make it durable; returns that path.

        If the instance is already spooled the first copy is kept (and this one dropped).
        """
        if self._fd < 0:
            raise RuntimeError("the instance was already committed or discarded")
        if self.size == 0:
            raise InvalidInstanceError("empty dataset")
        if self._tmp is None:
            self._link()  # linkat refuses an existing name: a duplicate needs no check beforehand
        elif self.final.exists():
            self._duplicate()
        else:
            self._rename()
        self.discard()
        return self.final

    def _link(self) -> None:
        dir_fd = os.open(self.spool.incoming_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:  # a dir fd makes CPython call linkat(AT_SYMLINK_FOLLOW), not link()
            os.link(
                f"/proc/self/fd/{self._fd}",
                self.final.name,
                dst_dir_fd=dir_fd,
                follow_symlinks=True,
            )
        except FileExistsError:
            return self._duplicate()  # the same instance, spooled by another association meanwhile
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            self.spool._tmpfile = False  # this file system cannot name a nameless file: plain files
            return self._copy_to_tmp_and_rename()
        finally:
            os.close(dir_fd)
        if self.spool.fsync:
            try:
                os.fsync(self._fd)  # fsync, not fdatasync: the new link is inode metadata too
            except OSError:
                self.final.unlink(missing_ok=True)  # not durable: the modality must send it again
                raise

    def _copy_to_tmp_and_rename(self) -> None:
        fd, name = tempfile.mkstemp(dir=self.spool.tmp_dir, suffix=".part")
        os.lseek(self._fd, 0, os.SEEK_SET)
        with open(fd, "wb", closefd=True) as out, open(self._fd, "rb", closefd=False) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.close(self._fd)
        self._fd, self._tmp = os.open(name, os.O_RDWR), Path(name)
        self._rename()

    def _rename(self) -> None:
        assert self._tmp is not None
        if self.spool.fsync:
            os.fsync(self._fd)
        os.replace(self._tmp, self.final)
        self._tmp = None
        if self.spool.fsync:
            fsync_dir(self.spool.incoming_dir)

    def _duplicate(self) -> None:
        if _same_content(self.final, self._fd, self.size):
            logger.info("instance %s already spooled", self.uid)
        else:
            logger.warning(
                "instance %s arrived again with different content: the first is kept "
                "(a corrected image needs a new SOPInstanceUID)",
                self.uid,
            )

    def discard(self) -> None:
        """Drop what was written (safe to call after commit, and more than once)."""
        if self._tmp is not None:  # unlinked first: once the file is closed, it is gone
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


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
        self._spares: list[
            int
        ] = []  # nameless files opened ahead of the instances that will fill them
        for directory in (self.root, self.tmp_dir, self.incoming_dir, self.rejected_dir):
            private_dir(directory)  # patients' images: the bridge's user only
        self._clean_tmp()

    def prepare(self) -> None:
        """Open a nameless file for the next instance now, while the association waits for it
        (creating an inode costs as much as writing half a CT slice). Linux only; else a no-op."""
        if not self._tmpfile:
            return
        with self._lock:
            if len(self._spares) >= _MAX_SPARES:
                return
        fd = _open_nameless(self.incoming_dir)
        if fd < 0:
            self._tmpfile = False
            return
        with self._lock:
            self._spares.append(fd)

    def _nameless_file(self) -> int:
        """A nameless, writable file in ``incoming/`` (a spare if one is ready); -1 if
        unsupported."""
        with self._lock:
            if self._spares:
                return self._spares.pop()
        return _open_nameless(self.incoming_dir)

    def close(self) -> None:
        """Close the spare nameless files (they vanish: they never had a name)."""
        with self._lock:
            spares, self._spares = self._spares, []
        for fd in spares:
            os.close(fd)

    def _clean_tmp(self) -> None:
        """Remove writes a crash interrupted: the modality never got success for them."""
        removed = 0
        for leftover in self.tmp_dir.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
        if removed:
            fsync_dir(self.tmp_dir)
            logger.warning("removed %d unfinished spool file(s) from %s", removed, self.tmp_dir)

    def path_for(self, sop_instance_uid: str) -> Path:
        """Return where the instance ``sop_instance_uid`` waits in ``incoming/``."""
        return self.incoming_dir / file_name(sop_instance_uid)

    def put(
        self, data: bytes | Sequence[bytes | memoryview], sop_instance_uid: str | None = None
    ) -> Path:
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
        writer = self.begin(sop_instance_uid)
        try:
            for part in parts:
                writer.write(part)
            return writer.commit()
        finally:
            writer.discard()

    def begin(self, sop_instance_uid: str) -> SpoolWriter:
        """Start receiving the instance ``sop_instance_uid`` piece by piece (see SpoolWriter).

        Raises InvalidInstanceError if the UID cannot name a file, OSError if the disk fails.
        """
        uid = sop_instance_uid.strip().rstrip("\x00")
        if not is_valid_uid(uid):
            raise InvalidInstanceError(f"invalid SOPInstanceUID {uid!r}")
        return SpoolWriter(self, uid)

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

    def done(self, *paths: Path) -> None:
        """Forget instances the hub confirmed it stored.

        The folder is not fsynced: an unlink a crash undoes only brings a file back, which is sent
        again and answered "already stored" (the forwarder marks the ledger first).
        """
        for path in paths:
            Path(path).unlink(missing_ok=True)

    def reject(self, path: Path, reason: str) -> Path:
        """Move an instance the hub refused to ``rejected/`` with the reason beside it."""
        path = Path(path)
        target = self.rejected_dir / path.name
        reason_file = self.rejected_dir / (path.name[: -len(SUFFIX)] + REASON_SUFFIX)
        with self._lock:
            # Reason first: a crash in between leaves the instance in incoming/, so it is retried.
            write_durably(reason_file, (reason.rstrip() + "\n").encode())
            os.replace(path, target)
        fsync_dir(self.rejected_dir)
        fsync_dir(self.incoming_dir)
        logger.warning("instance %s rejected: %s (kept in %s)", uid_of(path), reason, target)
        return target


def _same_content(path: Path, fd: int, size: int) -> bool:
    """Whether the spooled file ``path`` holds the same bytes as the first ``size`` of ``fd``."""
    try:
        if path.stat().st_size != size:
            return False
        offset = 0
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                if os.pread(fd, len(chunk), offset) != chunk:
                    return False
                offset += len(chunk)
        return True
    except OSError:
        return True  # cannot tell: say nothing alarming
