"""Push spooled instances to the hub over STOW-RS, in batches, retrying with backoff until the
hub has confirmed or refused each one. Nothing is deleted before the hub answered for it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import requests.adapters

from dicom_bridge.linking import CaseDirectory, accession_number
from dicom_bridge.progress import AT_HUB, REJECTED, Ledger
from dicom_bridge.spool import Spool, uid_of
from dicom_bridge.worklist import WorklistUnavailable
from shared.backoff import Backoff
from shared.deid import DeidRefused, Profile, deidentify_bytes
from shared.multipart import RelatedBody
from shared.stow import (
    StowAnswer,
    StowRetry,
    failure_text,
    is_transient_failure,
    judge_stow_answer,
)

logger = logging.getLogger(__name__)

DUPLICATE_INSTANCE = 0x0111  # the hub already has it: as good as stored
_CHUNK = 1024 * 1024
COALESCE_S = 0.05
PRUNE_EVERY_S = 3600.0  # how often settled progress older than keep_progress_s is forgotten


@dataclass
class Outgoing:
    """One STOW-RS request: spooled files (as they are, or de-identified bytes) for one case."""

    paths: list[Path]
    accession: str
    case_uid: str | None = None
    parts: list[Path | bytes] = field(default_factory=list)
    sent_uid: dict[Path, str] = field(default_factory=dict)  # the SOPInstanceUID the hub will name


class Forwarder:
    """Sends the spool to the hub's ``POST {hub_url}/dicomweb/studies``, at most ``max_in_flight``
    requests at a time, each for one accession number (so one ``X-Case-UID``)."""

    def __init__(
        self,
        spool: Spool,
        hub_url: str,
        token: str,
        batch_size: int = 20,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        timeout_s: float = 30.0,
        session: requests.Session | None = None,
        max_in_flight: int = 2,
        ledger: Ledger | None = None,
        cases: CaseDirectory | None = None,
        profile: Profile | None = None,
        keep_progress_s: float = 7 * 86400,
    ) -> None:
        self.spool = spool
        self.url = hub_url.rstrip("/") + "/dicomweb/studies"
        self.token = token
        self.batch_size = max(1, int(batch_size))
        self._batch_now = self.batch_size  # drops to 1 after a 413, back up after a success
        self.retry_initial_s = max(0.001, float(retry_initial_s))
        self.retry_max_s = max(self.retry_initial_s, float(retry_max_s))
        self.timeout_s = float(timeout_s)
        self.max_in_flight = max(1, int(max_in_flight))
        self.session = session or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.max_in_flight)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.ledger = ledger or Ledger(spool.root / "progress.sqlite")
        self.cases = cases or CaseDirectory(None)
        self.profile = profile  # None: instances leave exactly as received
        self.progress_changed: threading.Event | None = None  # set when counts change
        self.wake = threading.Event()  # set by the C-STORE handler when an instance is spooled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._claimed: set[Path] = set()
        # Batches finished since the spool was last listed: that listing may still name their
        # files, deleted or moved aside by now, so they are not launched from it again.
        self._finished: set[Path] = set()
        self._in_flight = 0
        self._landed = False  # a request was answered since the dispatcher last looked
        self._accession: dict[str, str] = {}  # sop uid -> AccessionNumber, of every registered file
        self.keep_progress_s = float(keep_progress_s)
        self._pruned_at = float("-inf")  # monotonic time of the last ledger pruning
        self._backoff = Backoff(self.retry_initial_s, self.retry_max_s)
        self._not_before = 0.0
        self._sent = 0
        self._rejected = 0
        self._last_error: str | None = None
        self._last_success: float | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread; instances left in the spool are sent first."""
        if not self.token:
            logger.warning("spoke_token is empty: set TELECONSULT_BRIDGE_SPOKE_TOKEN")
        self._stop.clear()
        # Twice the requests: each may be settling its files while the next one is in flight.
        self._pool = ThreadPoolExecutor(2 * self.max_in_flight, thread_name_prefix="dicom-stow")
        self._thread = threading.Thread(target=self._run, name="dicom-forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop promptly; a request in flight is bounded by the HTTP timeout."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.timeout_s + 5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.session.close()

    def notify(self) -> None:
        """Tell the forwarder that an instance was spooled."""
        self.wake.set()

    def status(self) -> dict[str, Any]:
        """Return counters for the operator: pending, sent and rejected (this run), last error."""
        with self._lock:
            return {
                "pending": self.spool.count(),
                "in_flight": self._in_flight,
                "sent": self._sent,
                "rejected": self._rejected,
                "last_error": self._last_error,
                "last_success_at": self._last_success,
            }

    # -- the dispatcher --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wake.clear()  # before listing, so a put during the send is not missed
            with self._lock:
                self._finished.clear()
            try:
                pending = self.spool.pending()
                self._register(pending)
                self._launch(pending)
            except Exception as exc:  # a bug must not kill the thread and strand the spool
                logger.exception("forwarder error")
                self._note_error(f"internal error: {exc}")
                self._retry_later(None)
            with self._lock:
                backing_off = self._not_before - time.monotonic()
            # Wakes on a new instance or a finished request; the timeout also picks up files
            # dropped in by hand and ends a backoff.
            self.wake.wait(backing_off if backing_off > 0 else self.retry_max_s)
            with self._lock:
                landed, self._landed = self._landed, False
            if not landed:
                # A modality sends instance after instance: take them a few at a time, so listing,
                # counting and committing do not compete with the C-STORE handler for every one.
                # An answered request, though, is followed by the next at once: the hub waits.
                self._stop.wait(COALESCE_S)

    def _register(self, pending: list[Path]) -> None:
        """Count newly spooled instances as received for their accession number."""
        waiting = {_uid(p) for p in pending}
        self._accession = {u: a for u, a in self._accession.items() if u in waiting}
        fresh = []
        for path in pending:
            uid = _uid(path)
            if uid not in self._accession:
                self._accession[uid] = accession_number(path)
                fresh.append((uid, self._accession[uid]))
        if fresh and self.ledger.receive(fresh):  # after a restart the ledger knows most of them
            for accession in {a for _, a in fresh}:
                self._link(accession)
            self._progress()
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            if forgotten := self.ledger.prune(self.keep_progress_s):
                logger.info("progress of %d settled instance(s) forgotten", forgotten)

    def _launch(self, pending: list[Path]) -> None:
        """Start requests for unclaimed instances while fewer than max_in_flight are running."""
        assert self._pool is not None
        with self._lock:
            if time.monotonic() < self._not_before:
                return
            free = [p for p in pending if p not in self._claimed and p not in self._finished]
            while free and self._in_flight < self.max_in_flight:
                accession = self._accession.get(_uid(free[0]), "")
                batch = [p for p in free if self._accession.get(_uid(p), "") == accession][
                    : self._batch_now
                ]
                free = [p for p in free if p not in batch]
                self._claimed.update(batch)
                self._in_flight += 1
                self._pool.submit(self._send, batch, accession)

    def _send(self, batch: list[Path], accession: str) -> None:
        answered = False
        try:
            out, result = self._exchange(batch, accession)
            answered = True
            self._land()  # the next request need not wait while this one's files are settled
            self._settle(out, result)
        except StowRetry as exc:
            self._note_error(str(exc))
            self._retry_later(exc)
        except Exception as exc:
            logger.exception("forwarder error")
            self._note_error(f"internal error: {exc}")
            self._retry_later(None)
        finally:  # after the backoff is set, so the dispatcher does not resend at once
            with self._lock:
                self._claimed.difference_update(batch)
                self._finished.update(batch)
            if not answered:
                self._land()
            self._progress()
            self.wake.set()

    def _land(self) -> None:
        """Count a request as no longer in flight and let the dispatcher send the next at once."""
        with self._lock:
            self._in_flight -= 1
            self._landed = True
        self.wake.set()

    def _retry_later(self, error: StowRetry | None) -> None:
        with self._lock:
            wait = self._backoff.next()
            delay = min(
                self.retry_max_s, max(wait, (error.retry_after_s if error else None) or 0.0)
            )
            self._not_before = time.monotonic() + delay
        logger.warning("%s; retrying in %.1f s", error or "forwarder error", delay)

    # -- one request -----------------------------------------------------------------------------

    def forward_once(self) -> bool:
        """Send one batch now, in this thread; return False if the spool was empty. Raises
        StowRetry."""
        pending = self.spool.pending()
        self._register(pending)
        if not pending:
            return False
        accession = self._accession.get(_uid(pending[0]), "")
        batch = [p for p in pending if self._accession.get(_uid(p), "") == accession][
            : self._batch_now
        ]
        self.forward(batch, accession)
        return True

    def forward(self, batch: list[Path], accession: str) -> None:
        """Send ``batch`` (one accession number) and settle each instance. Raises StowRetry."""
        self._settle(*self._exchange(batch, accession))

    def _exchange(self, batch: list[Path], accession: str) -> tuple[Outgoing, StowAnswer]:
        """Send ``batch`` and read the hub's answer (empty if de-identification left nothing)."""
        out = self._prepare(batch, accession)
        return out, (self._post(out) if out.parts else StowAnswer())

    def _prepare(self, batch: list[Path], accession: str) -> Outgoing:
        out = Outgoing(batch, accession)
        if self.profile is None:
            out.parts = list(batch)
            out.sent_uid = {p: _uid(p) for p in batch}
            return out
        try:
            out.case_uid = self._link(accession)
        except (
            WorklistUnavailable
        ) as exc:  # without the case the de-identified study would be orphaned
            raise StowRetry(f"cannot link accession {accession!r} to a case: {exc}") from exc
        for path in batch:
            try:
                data, sop_uid = deidentify_bytes(path.read_bytes(), self.profile)
            except DeidRefused as exc:
                self._reject(path, f"not forwarded: {exc}")
                continue
            out.parts.append(data)
            out.sent_uid[path] = sop_uid
        return out

    def _link(self, accession: str) -> str | None:
        case_uid = self.ledger.case_of(accession) if accession else None
        if case_uid is None and accession:
            case_uid = self.cases.case_for(accession)
            if case_uid is not None:
                self.ledger.link(accession, case_uid)
                self._progress()
        return case_uid

    def _post(self, out: Outgoing) -> StowAnswer:
        body = RelatedBody(out.parts)
        headers = {"Content-Type": body.content_type, "Accept": "application/dicom+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if out.case_uid:
            headers["X-Case-UID"] = out.case_uid
        try:
            response = self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise StowRetry(f"hub {self.url} unreachable: {_short_error(exc)}") from exc
        return self._read_response(response, list(out.sent_uid.values()))

    def _read_response(self, response: requests.Response, uids: list[str]) -> StowAnswer:
        code = response.status_code
        if code == 413 and len(uids) > 1:
            self._batch_now = 1
            raise StowRetry(f"hub refused a batch of {len(uids)} as too large; sending one by one")
        try:
            return judge_stow_answer(code, _json_or_none(response), uids, _retry_after(response))
        except StowRetry as retry:
            hint = (
                ": check TELECONSULT_BRIDGE_SPOKE_TOKEN"
                if code in (401, 403)
                else f" to STOW-RS: {response.text[:200]!r}"
            )
            raise StowRetry(f"{retry}{hint}", retry.retry_after_s) from None

    def _settle(self, out: Outgoing, result: StowAnswer) -> None:
        """Remove what the hub stored, move aside what it refused, keep the rest for a retry."""
        if not out.sent_uid:
            return
        kept = 0
        stored: list[Path] = []
        for path, uid in out.sent_uid.items():
            reason = result.failed.get(uid, -1)
            if uid in result.stored or reason == DUPLICATE_INSTANCE:
                stored.append(path)
            elif uid in result.failed and not is_transient_failure(reason):
                self._reject(path, failure_text(reason))
            else:
                kept += 1
        # The ledger first: a crash before the unlink re-sends, and the hub answers "have it".
        self.ledger.mark((_uid(p) for p in stored), AT_HUB)
        self.spool.done(*stored)
        self._count(sent=len(stored))
        if stored:
            logger.info(
                "%d instance(s) of accession %r confirmed by the hub%s",
                len(stored),
                out.accession,
                f" for case {out.case_uid}" if out.case_uid else "",
            )
        if kept:
            raise StowRetry(f"hub did not store {kept} of {len(out.sent_uid)} instance(s)")
        with self._lock:
            self._batch_now = self.batch_size
            self._backoff.reset()
            self._not_before = 0.0
            self._last_error = None
            self._last_success = time.time()

    def _reject(self, path: Path, reason: str) -> None:
        self.ledger.mark([_uid(path)], REJECTED)
        self.spool.reject(path, reason)
        self._count(rejected=1)

    def _progress(self) -> None:
        if self.progress_changed is not None:
            self.progress_changed.set()

    def _count(self, sent: int = 0, rejected: int = 0) -> None:
        with self._lock:
            self._sent += sent
            self._rejected += rejected

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message


def _uid(path: Path) -> str:
    return uid_of(path)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None


def _short_error(exc: Exception) -> str:
    """Return the useful end of a requests error (its text nests urllib3's whole story)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    errno_text = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    return errno_text.group(0) if errno_text else type(exc).__name__


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
