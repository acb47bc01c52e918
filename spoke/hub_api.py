"""The hub's REST API as the spoke uses it: a thin ``requests`` wrapper that turns every failure
into one of two exceptions, so callers decide "retry later" or "the hub said no"."""

from __future__ import annotations

import logging
from typing import Any

import requests

from shared.protocol import ACTING_DOCTOR_HEADER

log = logging.getLogger(__name__)


class HubUnavailable(Exception):
    """The hub could not be reached, timed out or failed (5xx): try again later."""


class HubRefused(Exception):
    """The hub answered with a 4xx: ``status``, the hub's error ``code``, ``message``,
    ``fields``."""

    def __init__(
        self, status: int, code: str, message: str, fields: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}


class HubApi:
    """Calls to ``{hub_url}/api/v1`` with the spoke's service token (or a user's credentials)."""

    def __init__(self, hub_url: str, spoke_token: str, timeout_s: float) -> None:
        self.base = hub_url.rstrip("/")
        self.spoke_token = spoke_token
        self.timeout_s = timeout_s

    def verify_doctor(self, username: str, password: str) -> dict[str, Any]:
        """Check a clinic doctor's password at the hub (no hub token is made); returns the user.
        Any refusal is the same 401, whether the password was right for someone else or not."""
        body = {"username": username, "password": password}
        result: dict[str, Any] = self._request("POST", "/api/v1/auth/verify", json=body)
        return result

    def doctor_status(self, username: str, timeout_s: float) -> dict[str, Any]:
        """The hub's word on a signed-in doctor: their user (still active), or HubRefused
        ``doctor_inactive``."""
        result: dict[str, Any] = self._request(
            "GET", "/api/v1/me", doctor=username, timeout=timeout_s
        )
        return result

    def raise_case(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send a case; the case uid is the idempotency key, so a resend never duplicates it."""
        headers = {"Idempotency-Key": str(body["uid"])}
        result: dict[str, Any] = self._request("POST", "/api/v1/cases", json=body, headers=headers)
        return result

    def list_cases(self, page: int, per_page: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "GET", "/api/v1/cases", params={"page": page, "per_page": per_page}
        )
        return result

    def advice_for(self, case_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", f"/api/v1/cases/{case_id}/advice")
        return result

    def specialties(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/api/v1/specialties")
        return result

    def unlinked_studies(self) -> list[dict[str, Any]]:
        """QIDO-RS: this spoke's studies at the hub that matched no case (the inbox)."""
        result: list[dict[str, Any]] = self._request(
            "GET", "/dicomweb/studies", params={"linked": "false"}
        )
        return result

    def attach_study(
        self, study_uid: str, case_uid: str, doctor: str | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "PUT",
            f"/dicomweb/studies/{study_uid}/case",
            json={"case_uid": case_uid},
            doctor=doctor,
        )
        return result

    def post_message(self, case_id: int, text: str, doctor: str | None = None) -> dict[str, Any]:
        """Write in the case's thread at the hub (the clinic's pages; online only)."""
        result: dict[str, Any] = self._request(
            "POST", f"/api/v1/cases/{case_id}/messages", json={"text": text}, doctor=doctor
        )
        return result

    def provide_info(self, case_id: int, text: str, doctor: str | None = None) -> dict[str, Any]:
        """Answer the specialist's request for information; the case goes back to them."""
        result: dict[str, Any] = self._request(
            "POST", f"/api/v1/cases/{case_id}/provide-info", json={"text": text}, doctor=doctor
        )
        return result

    def close_case(self, case_id: int, doctor: str | None = None) -> dict[str, Any]:
        """Close the case at the hub: the clinic has settled the patient's care."""
        result: dict[str, Any] = self._request(
            "POST", f"/api/v1/cases/{case_id}/close", json={}, doctor=doctor
        )
        return result

    def cancel_case(self, case_id: int, reason: str, key: str) -> dict[str, Any]:
        """Cancel the case at the hub (the clinic's decision, sent by the outbox). ``key`` is the
        idempotency key: a resend after a lost answer is the same cancellation."""
        result: dict[str, Any] = self._request(
            "POST",
            f"/api/v1/cases/{case_id}/cancel",
            json={"reason": reason},
            headers={"Idempotency-Key": key},
        )
        return result

    def ping(self) -> None:
        """Raises ``HubUnavailable`` unless the hub answers its health check."""
        self._request("GET", "/healthz", auth=False)

    def _request(
        self, method: str, path: str, auth: bool = True, doctor: str | None = None, **kwargs: Any
    ) -> Any:
        """``doctor``: the clinic doctor this call is made for; the hub audits it as theirs."""
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers["Authorization"] = f"Bearer {self.spoke_token}"
        if doctor:
            headers[ACTING_DOCTOR_HEADER] = doctor
        timeout = kwargs.pop("timeout", self.timeout_s)
        try:
            response = requests.request(
                method, self.base + path, headers=headers, timeout=timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise HubUnavailable(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise HubUnavailable(f"{method} {path}: hub answered {response.status_code}")
        if response.status_code >= 400:
            raise _refused(response)
        try:
            return response.json()
        except ValueError as exc:
            raise HubUnavailable(f"{method} {path}: the answer is not JSON") from exc


def _refused(response: requests.Response) -> HubRefused:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    return HubRefused(
        response.status_code,
        str(error.get("code") or "error"),
        str(error.get("message") or response.reason or "The hub refused the request."),
        error.get("fields") if isinstance(error.get("fields"), dict) else None,
    )
