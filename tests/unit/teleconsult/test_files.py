"""Durable writes: several files flushed together, each whole or absent, folders synced once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import teleconsult.files as files
from teleconsult.files import write_all_durably, write_durably


def test_a_batch_is_written_fsynced_before_any_rename_and_each_folder_synced_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(source: str, target: Path) -> None:
        calls.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(files, "fsync_dir", lambda directory: calls.append(f"dir {directory.name}"))
    batch = {tmp_path / "a" / f"{n}.dcm": bytes([n]) * 1000 for n in range(3)}
    batch[tmp_path / "b" / "x.dcm"] = b"x"

    write_all_durably(batch)

    assert all(path.read_bytes() == data for path, data in batch.items())
    assert calls == ["fsync"] * 4 + ["rename"] * 4 + ["dir a", "dir b"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "0.dcm",
        "1.dcm",
        "2.dcm",
    ]  # no .tmp-


def test_a_failed_flush_puts_no_file_in_place_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kept.dcm").write_bytes(b"old")
    flushed: list[int] = []

    def fsync(fd: int) -> None:
        if flushed:
            raise OSError(28, "No space left on device")
        flushed.append(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    with pytest.raises(OSError):
        write_all_durably({tmp_path / "new.dcm": b"new", tmp_path / "kept.dcm": b"newer"})

    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.dcm"]
    assert (tmp_path / "kept.dcm").read_bytes() == b"old"


def test_one_file_is_a_batch_of_one(tmp_path: Path) -> None:
    write_durably(tmp_path / "deep" / "one.txt", b"text")

    assert (tmp_path / "deep" / "one.txt").read_bytes() == b"text"
    assert os.listdir(tmp_path / "deep") == ["one.txt"]
