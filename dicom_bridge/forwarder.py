"""Push spooled instances to the hub over STOW-RS, in batches, retrying with backoff until the
hub has confirmed or refused each one. Nothing is deleted before the hub answered for it.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from dicom_bridge.spool import SUFFIX, Spool

logger = logging.getLogger(__name__)

REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
DUPLICATE_INSTANCE = 0x0111  # the hub already has it: as good as stored
_CHUNK = 1024 * 1024


class MultipartBody:
    """A ``multipart/related; type="application/dicom"`` body streamed from files.

    Has a length (so requests sends Content-Length, not chunked) and can be iterated again
    when a request is retried, without holding the instances in memory.
    """

    def __init__(self, paths: list[Path], boundary: str | None = None) -> None:
        self.paths = list(paths)
        self.boundary = boundary or secrets.token_hex(16)
        self._part_head = f"--{self.boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(
            "ascii"
        )
        self._tail = f"--{self.boundary}--\r\n".encode("ascii")
        self._length = sum(len(self._part_head) + p.stat().st_size + 2 for p in self.paths)
        self._length += len(self._tail)

    @property
    def content_type(self) -> str:
        """Return the Content-Type header value announcing this body."""
        return f'multipart/related; type="application/dicom"; boundary={self.boundary}'

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        for path in self.paths:
            yield self._part_head
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk
            yield b"\r\n"
        yield self._tail


@dataclass
class StowResult:
    """What the hub said about each instance of one STOW-RS request."""

    stored: set[str] = field(default_factory=set)
    # FailureReason code, or a text when the refusal came from HTTP rather than DICOM JSON.
    failed: dict[str, int | str | None] = field(default_factory=dict)


def _uid_of(item: dict[str, Any]) -> str | None:
    values = item.get(REFERENCED_SOP_INSTANCE_UID, {}).get("Value") or []
    return str(values[0]) if values else None


def _sequence(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    items = (body.get(tag) or {}).get("Value") or []
    return [item for item in items if isinstance(item, dict)]


def parse_stow_response(payload: Any) -> StowResult:
    """Read the DICOM JSON of a STOW-RS answer into stored UIDs and failed UIDs with reasons."""
    if isinstance(payload, list):  # some servers wrap the one dataset in an array
        payload = payload[0] if payload else {}
    result = StowResult()
    if not isinstance(payload, dict):
        return result
    for item in _sequence(payload, REFERENCED_SOP_SEQUENCE):
        if uid := _uid_of(item):
            result.stored.add(uid)
    for item in _sequence(payload, FAILED_SOP_SEQUENCE):
        if uid := _uid_of(item):
            reasons = (item.get(FAILURE_REASON) or {}).get("Value") or [None]
            result.failed[uid] = int(reasons[0]) if reasons[0] is not None else None
    return result


def is_transient_failure(reason: int | str | None) -> bool:
    """Return True for failure reasons worth retrying (the hub ran out of resources)."""
    return isinstance(reason, int) and (reason & 0xFF00) == 0xA700


class RetryLater(Exception):
    """The hub could not take the batch now; keep the files and try again after a backoff."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Forwarder:
    """Background thread sending the spool to the hub's ``POST {hub_url}/dicomweb/studies``."""

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
    ) -> None:
        self.spool = spool
        self.url = hub_url.rstrip("/") + "/dicomweb/studies"
        self.token = token
        self.batch_size = max(1, int(batch_size))
        self._batch_now = self.batch_size  # drops to 1 after a 413, back up after a success
        self.retry_initial_s = max(0.001, float(retry_initial_s))
        self.retry_max_s = max(self.retry_initial_s, float(retry_max_s))
        self.timeout_s = float(timeout_s)
        self.session = session or requests.Session()
        self.wake = threading.Event()  # set by the C-STORE handler when an instance is spooled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
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
        self._thread = threading.Thread(target=self._run, name="dicom-forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop promptly; a request in flight is bounded by the HTTP timeout."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.timeout_s + 5)
        self.session.close()

    def notify(self) -> None:
        """Tell the forwarder that an instance was spooled."""
        self.wake.set()

    def status(self) -> dict[str, Any]:
        """Return counters for the operator: pending, sent and rejected (this run), last error."""
        with self._lock:
            return {
                "pending": self.spool.count(),
                "sent": self._sent,
                "rejected": self._rejected,
                "last_error": self._last_error,
                "last_success_at": self._last_success,
            }

    # -- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.retry_initial_s
        while not self._stop.is_set():
            self.wake.clear()  # before listing, so a put during the send is not missed
            try:
                sent_any = self.forward_once()
            except RetryLater as exc:
                self._note_error(str(exc))
                delay = min(self.retry_max_s, max(backoff, exc.retry_after_s or 0.0))
                logger.warning("%s; retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
                backoff = min(self.retry_max_s, backoff * 2)
                continue
            except Exception as exc:  # a bug must not kill the thread and strand the spool
                logger.exception("forwarder error")
                self._note_error(f"internal error: {exc}")
                self._stop.wait(backoff)
                backoff = min(self.retry_max_s, backoff * 2)
                continue
            backoff = self.retry_initial_s
            if not sent_any:
                # Idle: wake on a new instance; the timeout also picks up files dropped in by hand.
                self.wake.wait(self.retry_max_s)

    def forward_once(self) -> bool:
        """Send one batch; return False if the spool was empty. Raises RetryLater."""
        batch = self.spool.pending(self._batch_now)
        if not batch:
            return False
        result = self._post(batch)
        self._settle(batch, result)
        return True

    def _post(self, batch: list[Path]) -> StowResult:
        body = MultipartBody(batch)
        headers = {"Content-Type": body.content_type, "Accept": "application/dicom+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise RetryLater(f"hub {self.url} unreachable: {_short_error(exc)}") from exc
        return self._read_response(response, batch)

    def _read_response(self, response: requests.Response, batch: list[Path]) -> StowResult:
        code = response.status_code
        if code in (200, 202, 409):
            result = parse_stow_response(_json_or_none(response))
            if code == 200 and not result.stored and not result.failed:
                result.stored = {_uid(p) for p in batch}  # 200 without detail: all stored
            if code == 409 and not result.failed:
                raise RetryLater("hub answered 409 without a FailedSOPSequence")
            return result
        if code in (401, 403):
            raise RetryLater(
                f"hub refused the spoke token (HTTP {code}): check TELECONSULT_BRIDGE_SPOKE_TOKEN"
            )
        if code == 413:
            if len(batch) == 1:
                return StowResult(failed={_uid(batch[0]): "too large for the hub (HTTP 413)"})
            self._batch_now = 1
            raise RetryLater(
                f"hub refused a batch of {len(batch)} as too large; sending one by one"
            )
        raise RetryLater(
            f"hub answered HTTP {code} to STOW-RS: {response.text[:200]!r}",
            _retry_after(response),
        )

    def _settle(self, batch: list[Path], result: StowResult) -> None:
        """Remove what the hub stored, move aside what it refused, keep the rest for a retry."""
        kept = 0
        for path in batch:
            uid = _uid(path)
            reason = result.failed.get(uid, -1)
            if uid in result.stored or reason == DUPLICATE_INSTANCE:
                self.spool.done(path)
                self._count(sent=1)
            elif uid in result.failed and not is_transient_failure(reason):
                self.spool.reject(path, _reason_text(reason))
                self._count(rejected=1)
            else:
                kept += 1
        if kept:
            raise RetryLater(f"hub did not store {kept} of {len(batch)} instance(s)")
        self._batch_now = self.batch_size
        with self._lock:
            self._last_error = None
            self._last_success = time.time()

    def _count(self, sent: int = 0, rejected: int = 0) -> None:
        with self._lock:
            self._sent += sent
            self._rejected += rejected

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message


def _uid(path: Path) -> str:
    return path.name[: -len(SUFFIX)]


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


def _reason_text(reason: int | str | None) -> str:
    if reason is None:
        return "refused by the hub (no failure reason given)"
    if isinstance(reason, str):
        return f"refused by the hub: {reason}"
    return f"refused by the hub: FailureReason 0x{reason:04X}"
