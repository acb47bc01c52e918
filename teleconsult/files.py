"""Files written so that after a crash they are either whole or absent."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a folder only its owner can enter (0700): it holds
    patient data, databases or keys. An existing folder is tightened too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Make ``path`` a file only its owner can read or write (0600), creating it empty if absent."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def private_sqlite(url: str) -> None:
    """For a SQLite file URL: its folder 0700 and the file 0600 before SQLite opens it (SQLite
    gives its -wal, -shm and -journal files the database file's mode). Others: nothing."""
    if not url.startswith("sqlite") or ":memory:" in url or "mode=memory" in url:
        return
    _, _, rest = url.partition(":///")
    name = rest.split("?", 1)[0]
    if not name:
        return
    path = Path(name)
    private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists() and side.stat().st_mode & 0o077:
            os.chmod(side, 0o600)


def write_secret(path: Path, text: str) -> Path:
    """Write a secret (a token) to ``path`` readable by the owner only, whole or not at all."""
    private_dir(path.parent)
    write_durably(path, text.encode())  # a temporary file from mkstemp: 0600 from the start
    return path


def write_durably(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, rename, fsync the folder."""
    write_all_durably({path: data})


def write_all_durably(files: Mapping[Path, bytes]) -> None:
    """Write several files, each whole or absent after a crash, all durable on return.

    Every file is written and its writeback started before the first fsync waits, so the disk
    flushes overlap; each folder is fsynced once, after all its renames. If a write or an fsync
    fails, no file is put in place and no temporary file is left behind.
    """
    staged: list[tuple[int, Path, Path]] = []  # (descriptor, temporary file, final path)
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            staged.append((fd, Path(name), path))
            with open(fd, "wb", closefd=False) as out:
                out.write(data)
            start_writeback(fd)
        for fd, _, _ in staged:
            os.fsync(fd)
        for _, tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for _, tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        for fd, _, _ in staged:
            os.close(fd)
    for directory in dict.fromkeys(path.parent for path in files):
        fsync_dir(directory)


def commit_all_durably(moves: Mapping[Path, Path]) -> None:
    """Put files already written (``temporary -> final``, same file system) in place, each
    whole or absent after a crash, all durable on return: every file is fsynced before the first
    rename (their writeback already started), each folder once after its renames. If an fsync
    fails, no file is put in place."""
    for tmp in moves:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for tmp, path in moves.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    for directory in dict.fromkeys(path.parent for path in moves.values()):
        fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range``, or None where the platform lacks it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range()


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Start the disk write of ``length`` bytes of ``fd`` from ``offset`` (0: to the end), without
    waiting for it, so that a later fsync waits for less; where the platform allows it."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(
            fd, offset, length, 2
        )  # SYNC_FILE_RANGE_WRITE; failing loses only the head start


def read_or_create_key(path: Path) -> bytes:
    """A secret kept in ``path`` (created once, readable by the owner only)."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32).encode()
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".key.", suffix=".part")  # 0600
    tmp = Path(name)
    with open(fd, "wb") as out:
        out.write(key)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(tmp, path)  # never replaces a key another process wrote meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path.read_bytes().strip()
