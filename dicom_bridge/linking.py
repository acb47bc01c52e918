"""Which case an instance belongs to: its AccessionNumber looked up in the spoke's open cases (the
worklist the bridge already serves). Needed when de-identification replaces the AccessionNumber:
the case then travels beside the data, as the STOW-RS ``X-Case-UID`` header.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pydicom.filereader import read_partial

from dicom_bridge.worklist import WorklistSource, WorklistUnavailable

ACCESSION_NUMBER = 0x00080050
HEAD_BYTES = 16 * 1024  # group 0008 of any real instance starts well within this
_IMPLICIT_LE = "1.2.840.10008.1.2"
_NOT_LITTLE_ENDIAN_VR = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}  # deflated, big endian
# Explicit VRs whose length takes 4 bytes after 2 reserved ones (PS3.5 7.1.2).
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_TAG = struct.Struct("<HH")


def accession_number(path: Path) -> str:
    """The AccessionNumber of a spooled Part 10 file ("" if it has none or cannot be read).

    Read for every instance the modality sends, while it is still sending the next ones: the
    first bytes are scanned by hand; pydicom reads whatever the scan cannot tell (deflated or
    big endian data, an undefined-length sequence before it, non-ASCII text).
    """
    try:
        with path.open("rb") as fh:
            found = scan_accession_number(fh.read(HEAD_BYTES))
            if found is not None:
                return found
            fh.seek(0)
            ds = read_partial(fh, stop_when=lambda tag, vr, length: tag > ACCESSION_NUMBER)
        return str(ds.get("AccessionNumber", "") or "").strip()
    except Exception:  # an unreadable file goes unlinked; the hub will say what is wrong with it
        return ""


def scan_accession_number(head: bytes) -> str | None:
    """The AccessionNumber in the first bytes of a Part 10 file, "" if absent; None if unsure."""
    if head[128:132] != b"DICM" or head[132:138] != b"\x02\x00\x00\x00UL":
        return None
    end = 144 + int.from_bytes(head[140:144], "little")
    syntax = None
    for tag, value in _elements(head, 144, end, explicit=True):
        if tag == 0x00020010:
            syntax = value.rstrip(b"\x00 ").decode("ascii", "replace")
    if syntax is None or syntax in _NOT_LITTLE_ENDIAN_VR or not syntax.startswith(_IMPLICIT_LE):
        return None
    for tag, value in _elements(head, end, len(head), explicit=syntax != _IMPLICIT_LE):
        if tag == ACCESSION_NUMBER:
            return value.decode("ascii").rstrip("\x00").strip() if value.isascii() else None
        if tag > ACCESSION_NUMBER:
            return ""
    return None  # ran out of bytes or met an undefined length before (0008,0050)


def _elements(data: bytes, offset: int, end: int, explicit: bool) -> Iterator[tuple[int, bytes]]:
    """(tag, value) of the elements in ``data[offset:end]``, stopping where it cannot go on."""
    while offset + 8 <= end:
        group, element = _TAG.unpack_from(data, offset)
        vr = data[offset + 4: offset + 6]
        if explicit and vr in _LONG_VRS:
            if offset + 12 > end:
                return
            length, header = int.from_bytes(data[offset + 8: offset + 12], "little"), 12
        elif explicit:
            length, header = int.from_bytes(data[offset + 6: offset + 8], "little"), 8
        else:
            length, header = int.from_bytes(data[offset + 4: offset + 8], "little"), 8
        if length == 0xFFFFFFFF or offset + header + length > end:
            return
        yield (group << 16) | element, data[offset + header: offset + header + length]
        offset += header + length


class CaseDirectory:
    """AccessionNumber -> case uid, from the worklist; asks the spoke again on a miss (rate limited)."""

    def __init__(self, source: WorklistSource | None, refresh_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.refresh_s = refresh_s
        self.clock = clock
        self._cases: dict[str, str] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def case_for(self, accession: str) -> str | None:
        """The case uid of ``accession``, or None if no open case has it.

        Raises WorklistUnavailable if the spoke has never answered (the caller should wait).
        """
        if not accession or self.source is None:
            return None
        with self._lock:
            found = self._cases.get(accession)
            stale = self._fetched_at is None or self.clock() - self._fetched_at >= self.refresh_s
            if found is not None or not stale:
                return found
            try:
                cases = self.source.open_cases()
            except WorklistUnavailable:
                if self._fetched_at is None:
                    raise
                return None
            self._fetched_at = self.clock()
            for case in cases:
                if case.get("accession_number") and case.get("uid"):
                    self._cases[str(case["accession_number"])] = str(case["uid"])
            return self._cases.get(accession)
