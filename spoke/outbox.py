"""The outbox worker: a thread that sends cases raised at this spoke to the hub, oldest first,
and keeps retrying (with exponential backoff) until the hub has them or refuses them for good."""

from __future__ import annotations

import logging
import time

from spoke.hub_api import HubApi, HubRefused, HubUnavailable
from spoke.store import CaseStore
from spoke.worker import Worker

log = logging.getLogger(__name__)

# The hub refused the case itself: sending it again cannot help.
PERMANENT = frozenset({400, 404, 409, 413, 415, 422})
# The spoke is misconfigured (token, spoke code): an operator must fix it; keep the case.
CONFIGURATION = frozenset({401, 403})
SPECIALTIES_EVERY_S = 600.0


class OutboxWorker(Worker):
    """Sends pending cases; ``wake()`` after raising one, ``hub_reachable`` for the pages."""

    name = "spoke-outbox"

    def __init__(
        self, store: CaseStore, hub_api: HubApi, interval_s: float, max_backoff_s: float = 60.0
    ) -> None:
        super().__init__(interval_s, max_backoff_s)
        self.store = store
        self.hub_api = hub_api
        self.hub_reachable = False
        self._specialties_at = float("-inf")

    def cycle(self) -> bool:
        return self.sync_once()

    def sync_once(self) -> bool:
        """One pass: send every pending case (or probe the hub when none waits). False when the
        hub could not be reached or refused this spoke."""
        try:
            bodies = self.store.pending()
            if not bodies:
                self.hub_api.ping()
            while bodies and not self._stop.is_set():
                for body in bodies:
                    if self._stop.is_set() or not self._send(body):
                        return False
                bodies = self.store.pending()
            self._send_cancels()
            self._refresh_specialties()
        except HubUnavailable as exc:
            self._unreachable(str(exc))
            return False
        self.hub_reachable = True
        return True

    def _send(self, body: dict[str, object]) -> bool:
        """Send one case; True when the hub took or refused it, False to retry later."""
        uid = str(body["uid"])
        try:
            hub_case = self.hub_api.raise_case(body)
        except HubUnavailable as exc:
            self.store.record_failure(uid, f"The hub could not be reached: {exc}")
            raise
        except HubRefused as exc:
            return self._refused(uid, exc)
        self.store.mark_synced(uid, hub_case)
        self.hub_reachable = True
        log.info("case %s sent to the hub: token %s", uid, hub_case.get("token"))
        return True

    def _send_cancels(self) -> None:
        """Send the clinic's cancellations of cases the hub has. A 409 because the case is
        already cancelled is the answer to an earlier send whose reply was lost: done."""
        for uid, hub_id, reason in self.store.pending_cancels():
            if self._stop.is_set():
                return
            try:
                hub_case = self.hub_api.cancel_case(hub_id, reason, key=f"cancel:{uid}")
            except HubRefused as exc:
                if exc.status in CONFIGURATION:
                    log.error("THE HUB REFUSED THIS SPOKE (%s): cancellation of %s kept", exc, uid)
                    continue
                already = exc.status == 409 and exc.fields.get("status") == "cancelled"
                self.store.cancel_settled(uid, None, "" if already else _describe(exc))
                log.warning("hub answered the cancellation of %s: %s", uid, exc)
                continue
            self.store.cancel_settled(uid, hub_case)
            log.info("case %s cancelled at the hub", uid)

    def _refused(self, uid: str, exc: HubRefused) -> bool:
        self.hub_reachable = True
        if exc.status in CONFIGURATION:
            log.error(
                "THE HUB REFUSED THIS SPOKE (%s): check spoke_code and spoke_token; case %s kept",
                exc,
                uid,
            )
            self.store.record_failure(
                uid, f"The hub refused this clinic's credentials: {exc.message}"
            )
            return False
        if exc.status in PERMANENT:
            log.warning("hub rejected case %s: %s", uid, exc)
            self.store.mark_rejected(uid, _describe(exc))
            return True
        log.warning("hub answered %s for case %s: will retry", exc.status, uid)
        self.store.record_failure(uid, exc.message)
        return False

    def _unreachable(self, why: str) -> None:
        if self.hub_reachable or self.backoff.failures == 0:
            log.warning("hub unreachable: %s", why)
        self.hub_reachable = False

    def _refresh_specialties(self) -> None:
        if time.monotonic() - self._specialties_at < SPECIALTIES_EVERY_S:
            return
        try:
            self.store.save_specialties(self.hub_api.specialties())
            self._specialties_at = time.monotonic()
        except HubRefused as exc:
            log.error("hub refused the specialties list: %s", exc)
            self._specialties_at = time.monotonic()


def _describe(exc: HubRefused) -> str:
    """The hub's message with the fields it names, in words for the clinic doctor."""
    if not exc.fields:
        return exc.message
    details = "; ".join(f"{name}: {_join(problem)}" for name, problem in exc.fields.items())
    return f"{exc.message} ({details})"


def _join(problem: object) -> str:
    if isinstance(problem, list):
        return " ".join(str(p) for p in problem)
    if isinstance(problem, dict):
        return "; ".join(f"{k}: {_join(v)}" for k, v in problem.items())
    return str(problem)
