"""Which case an instance belongs to: its AccessionNumber looked up in the spoke's open cases (the
worklist the bridge already serves). Needed when de-identification replaces the AccessionNumber:
the case then travels beside the data, as the STOW-RS ``X-Case-UID`` header.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from dicom_bridge.worklist import WorklistSource, WorklistUnavailable


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
