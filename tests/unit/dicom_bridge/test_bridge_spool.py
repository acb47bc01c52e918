"""The spool: atomic, durable, idempotent, and never loses an instance the hub refused."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dicom_bridge.spool import InvalidInstanceError, Spool, file_name, uid_of


def test_put_renames_into_incoming_and_leaves_no_tmp(tmp_path: Path, ct_files: list[Path]) -> None:
    spool = Spool(tmp_path / "spool")
    data = ct_files[0].read_bytes()

    path = spool.put(data, ct_files[0].stem)

    assert path == spool.incoming_dir / file_name(ct_files[0].stem)
    assert uid_of(path) == ct_files[0].stem
    assert path.read_bytes() == data
    assert list(spool.tmp_dir.iterdir()) == []
    assert spool.pending() == [path]


def test_second_put_of_same_uid_is_a_noop_success(tmp_path: Path, ct_files: list[Path]) -> None:
    spool = Spool(tmp_path / "spool")
    data = ct_files[0].read_bytes()
    first = spool.put(data, ct_files[0].stem)

    second = spool.put(data, ct_files[0].stem)

    assert second == first
    assert spool.count() == 1
    assert list(spool.tmp_dir.iterdir()) == []


def test_put_reads_the_uid_from_the_data_when_not_given(
    tmp_path: Path, ct_files: list[Path]
) -> None:
    spool = Spool(tmp_path / "spool")

    path = spool.put(ct_files[1].read_bytes())

    assert uid_of(path) == ct_files[1].stem


@pytest.mark.parametrize("uid", ["../evil", "1.2.3/../../x", "", "1.2.a", "1." + "2" * 70])
def test_put_refuses_uids_that_are_not_uids(tmp_path: Path, ct_files: list[Path], uid: str) -> None:
    spool = Spool(tmp_path / "spool")
    with pytest.raises(InvalidInstanceError):
        spool.put(ct_files[0].read_bytes(), uid or "not a uid")
    assert spool.count() == 0


def test_put_refuses_empty_and_non_dicom_data(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    with pytest.raises(InvalidInstanceError):
        spool.put(b"", "1.2.3")
    with pytest.raises(InvalidInstanceError):
        spool.put(b"this is not DICOM at all")
    assert spool.count() == 0


def test_leftover_tmp_files_are_removed_on_start_and_never_pending(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    (root / "tmp").mkdir(parents=True)
    half = root / "tmp" / "1.2.3.4.abcd.part"
    half.write_bytes(b"\x00" * 100)  # a write a crash interrupted

    spool = Spool(root)

    assert not half.exists()
    assert spool.pending() == []


def test_pending_is_oldest_first_and_limited(tmp_path: Path, ct_files: list[Path]) -> None:
    spool = Spool(tmp_path / "spool")
    paths = [spool.put(f.read_bytes(), f.stem) for f in reversed(ct_files)]
    for age, path in enumerate(paths):  # make the order explicit, independent of clock resolution
        os.utime(path, ns=(1_000_000_000 * (age + 1),) * 2)

    assert spool.pending() == paths
    assert spool.pending(limit=2) == paths[:2]


def test_done_removes_and_reject_keeps_with_reason(tmp_path: Path, ct_files: list[Path]) -> None:
    spool = Spool(tmp_path / "spool")
    kept, refused = (spool.put(f.read_bytes(), f.stem) for f in ct_files[:2])
    data = refused.read_bytes()

    spool.done(kept)
    moved = spool.reject(refused, "refused by the hub: FailureReason 0xC000")

    assert spool.pending() == []
    assert moved == spool.rejected_dir / refused.name
    assert moved.read_bytes() == data
    reason = spool.rejected_dir / (refused.name[: -len(".dcm")] + ".reason.txt")
    assert "0xC000" in reason.read_text()
    assert spool.rejected() == [moved]


def test_a_restarted_spool_still_has_its_instances(tmp_path: Path, ct_files: list[Path]) -> None:
    first = Spool(tmp_path / "spool")
    for f in ct_files:
        first.put(f.read_bytes(), f.stem)

    assert Spool(tmp_path / "spool").count() == len(ct_files)


def test_a_resent_instance_with_other_content_keeps_the_first_and_says_so(
    tmp_path: Path, ct_files: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool")
    first = ct_files[0].read_bytes()
    path = spool.put(first)
    spool.put(first)
    assert "different content" not in caplog.text
    spool.put(first[:-2] + b"\x01\x02")  # same SOPInstanceUID, e.g. a corrected AccessionNumber
    assert path.read_bytes() == first and spool.count() == 1
    assert "arrived again with different content" in caplog.text


@pytest.mark.parametrize("nameless", [True, False], ids=["O_TMPFILE", "tmp-and-rename"])
def test_an_instance_written_piece_by_piece_appears_only_when_committed(
    tmp_path: Path, ct_files: list[Path], nameless: bool
) -> None:
    spool = Spool(tmp_path)
    spool._tmpfile = (
        spool._tmpfile and nameless
    )  # the other way, as on a file system without O_TMPFILE
    data = ct_files[0].read_bytes()
    writer = spool.begin(ct_files[0].stem)
    writer.write(data[:1000])

    assert spool.count() == 0  # half an instance never has its name
    writer.write(memoryview(data)[1000:])
    path = writer.commit()

    assert path.read_bytes() == data
    assert spool.pending() == [path]
    assert not any(spool.tmp_dir.iterdir())


@pytest.mark.parametrize("nameless", [True, False], ids=["O_TMPFILE", "tmp-and-rename"])
def test_a_discarded_instance_leaves_nothing(tmp_path: Path, nameless: bool) -> None:
    spool = Spool(tmp_path)
    spool._tmpfile = spool._tmpfile and nameless
    writer = spool.begin("1.2.3")
    writer.write(b"half")
    writer.discard()

    assert spool.count() == 0
    assert not any(spool.tmp_dir.iterdir())
    assert not any(spool.incoming_dir.iterdir())


def test_a_prepared_file_is_used_by_the_next_instance_and_closed_with_the_spool(
    tmp_path: Path, ct_files: list[Path]
) -> None:
    spool = Spool(tmp_path)
    spool.prepare()
    if not spool._tmpfile:  # no O_TMPFILE on this file system: nothing can be prepared
        assert spool._spares == []
        return
    (spare,) = spool._spares

    writer = spool.begin(ct_files[0].stem)
    assert writer._fd == spare and not spool._spares
    writer.write(ct_files[0].read_bytes())
    assert writer.commit().read_bytes() == ct_files[0].read_bytes()

    spool.prepare()
    spool.close()
    assert not spool._spares


def test_file_names_are_made_by_the_bridge_not_taken_from_the_uid(
    tmp_path: Path, ct_files: list[Path]
) -> None:
    """DESIGN.md: file names never come from client data. A malformed UID is refused outright;
    a good one is only read back from a name of hex digits the bridge made."""
    spool = Spool(tmp_path / "spool")
    for crafted in ("../../evil", str(tmp_path / "abs"), "1.2.3/../../4"):
        with pytest.raises(InvalidInstanceError):
            spool.put(b"DATA", crafted)
    uid = ct_files[0].stem
    path = spool.put(ct_files[0].read_bytes(), uid)
    assert uid not in path.name and re.fullmatch(r"u-[0-9a-f]+\.dcm", path.name)
    assert uid_of(path) == uid and spool.pending() == [path]
    assert [p.name for p in spool.root.rglob("*") if p.is_file()] == [path.name]
