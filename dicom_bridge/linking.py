"""Which case an instance belongs to: its AccessionNumber looked up in the spoke's open cases (the
worklist the bridge already serves). Needed when de-identification replaces the AccessionNumber:
the case then travels beside the data, as the STOW-RS ``X-Case-UID`` header.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydicom.filereader import read_partial

from dicom_bridge.scan import (
    ACCESSION_NUMBER,
    IMPLICIT_LE,
    NotADataSet,
    part10_syntax,
    readable,
    text,
    walk,
)
from dicom_bridge.worklist import WorklistSource, WorklistUnavailable

HEAD_BYTES = 16 * 1024  # group 0008 of any real instance starts well within this


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
    found = part10_syntax(head)
    if found is None or not readable(found[0]):
        return None
    syntax, start = found
    try:
        for tag, value in walk(head, start, explicit=syntax != IMPLICIT_LE):
            if tag == ACCESSION_NUMBER:
                return text(value)
            if tag > ACCESSION_NUMBER:
                return ""
    except NotADataSet:
        return None  # pydicom will say
    return None  # ran out of bytes or met an undefined length before (0008,0050)


class CaseDirectory:
    """AccessionNumber -> case uid, from the worklist; asks the spoke again on a miss (rate
    limited)."""

    def __init__(
        self,
        source: WorklistSource | None,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
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
