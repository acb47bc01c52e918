"""The worker that sends waiting uploads to the hub's STOW-RS (``X-Case-UID``) once the case is
at the hub, retrying with backoff; the hub's answer settles each instance in the queue."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import requests

from shared.errors import TeleconsultError
from shared.multipart import RelatedBody
from shared.stow import StowRetry, failure_text, is_transient_failure, judge_stow_answer
from spoke.store import CaseStore
from spoke.uploads.queue import UploadQueue
from spoke.worker import Worker

log = logging.getLogger(__name__)


class HubDown(Exception):
    """The hub could not be reached or failed: try again later."""


class UploadWorker(Worker):
    """Sends waiting uploads to the hub's STOW-RS; ``wake()`` after an upload."""

    name = "spoke-uploads"

    def __init__(
        self,
        queue: UploadQueue,
        store: CaseStore,
        hub_url: str,
        spoke_token: str,
        timeout_s: float,
        interval_s: float,
        max_backoff_s: float = 60.0,
    ) -> None:
        super().__init__(interval_s, max_backoff_s)
        self.queue = queue
        self.store = store
        self.url = hub_url.rstrip("/") + "/dicomweb/studies"
        self.spoke_token = spoke_token
        self.timeout_s = max(float(timeout_s), 30.0)  # an instance may be tens of MB

    def cycle(self) -> bool:
        return self.send_once()

    def send_once(self) -> bool:
        """One pass over the waiting uploads of cases that are at the hub; False to back off."""
        now = self.store.clock.now
        for case_uid, records in self.queue.waiting().items():
            try:
                case = self.store.get_case(case_uid)
            except TeleconsultError:
                for record in records:
                    self.queue.refused(
                        case_uid, record, "The case is not known at this clinic.", now()
                    )
                continue
            if case.get("sync_state") == "rejected":
                for record in records:
                    self.queue.refused(case_uid, record, "The hub refused the case itself.", now())
                continue
            if not case.get("hub_id"):
                continue  # sent with the case's images once the case is at the hub
            for record in records:
                if self._stop.is_set():
                    return True
                try:
                    self._send(case_uid, record)
                except HubDown as exc:
                    self.queue.failed_attempt(case_uid, record, str(exc))
                    log.warning(
                        "upload %s of case %s not sent: %s", record["sop_uid"], case_uid, exc
                    )
                    return False
        return True

    def _send(self, case_uid: str, record: dict[str, Any]) -> None:
        now = self.store.clock.now
        try:
            data = self.queue.data(case_uid, record)
        except OSError:
            self.queue.refused(
                case_uid, record, "The file was lost at the clinic before it was sent.", now()
            )
            return
        body = RelatedBody([data])
        headers = {
            "Authorization": f"Bearer {self.spoke_token}",
            "Content-Type": body.content_type,
            "Accept": "application/dicom+json",
            "X-Case-UID": case_uid,
        }
        try:
            answer = requests.post(self.url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise HubDown(f"{exc.__class__.__name__}: {exc}") from None
        uid = str(record["sop_uid"])
        try:  # one policy for every sender of STOW-RS (shared/stow.py)
            judged = judge_stow_answer(answer.status_code, _json(answer), [uid])
        except StowRetry as exc:
            raise HubDown(f"{exc}: {_error_message(answer)}".rstrip(": ")) from None
        if uid in judged.stored:
            self.queue.confirmed(case_uid, record, now())
            log.info("upload %s of case %s is at the hub", uid, case_uid)
            return
        reason = judged.failed.get(uid)
        if is_transient_failure(reason):
            raise HubDown(f"the hub could not store it now ({failure_text(reason)})")
        words = _warnings(answer) or _error_message(answer) or failure_text(reason)
        self.queue.refused(case_uid, record, words, now())
        log.warning("upload %s of case %s refused by the hub: %s", uid, case_uid, words)


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _warnings(answer: requests.Response) -> str:
    """The hub's reasons in words (its Warning headers)."""
    warnings = answer.raw.headers.getlist("Warning") if answer.raw is not None else []
    return "; ".join(m.group(1) for w in warnings if (m := re.search(r'"(.*)"', w)))


def _error_message(answer: requests.Response) -> str:
    try:
        error = answer.json().get("error") or {}
        return str(error.get("message") or "")
    except (ValueError, AttributeError):
        return ""


def build_worker(
    data_dir: str | Path,
    store: CaseStore,
    hub_url: str,
    spoke_token: str,
    timeout_s: float,
    interval_s: float,
) -> UploadWorker:
    return UploadWorker(
        UploadQueue(Path(data_dir) / "uploads"), store, hub_url, spoke_token, timeout_s, interval_s
    )
