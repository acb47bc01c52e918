"""The STOW-RS answer (PS3.18 10.5.3), both ways, and what a client does with its HTTP status:
the hub builds it here, the bridge's forwarder and ``teleconsult send`` read it here.

The answer is DICOM JSON: a ReferencedSOPSequence of the instances stored (or already held) and
a FailedSOPSequence of those refused, each with its FailureReason. The status says which:
200 all stored, 202 some refused, 409 none stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
FAILURE_REASON = "00081197"
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
OUT_OF_RESOURCES = 0xA700  # FailureReason family worth retrying

# What a client does with an HTTP status other than 200/202/409 (one policy for every sender):
# the request itself is wrong and would be wrong again -> each instance refused;
REFUSED_STATUSES = frozenset({400, 413, 415, 422})
# anything else (401/403 credentials, 404 a case not at the hub yet, 408, 429, 5xx) -> the
# whole request is sent again later, nothing is given up.


@dataclass
class StowAnswer:
    """What the hub said about each instance of one request."""

    stored: set[str] = field(default_factory=set)
    # FailureReason code, or a text when the refusal came from HTTP rather than DICOM JSON.
    failed: dict[str, int | str | None] = field(default_factory=dict)


class StowRetry(Exception):
    """The hub did not take the request now: keep every instance and send it again later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def stow_response(
    referenced: Iterable[tuple[str, str]], failed: Iterable[tuple[str, str, int]]
) -> dict[str, Any]:
    """The DICOM JSON answer: ``referenced`` as (SOP class, SOP instance) UIDs, ``failed`` as
    (SOP class, SOP instance, FailureReason)."""
    body: dict[str, Any] = {}
    stored = [_sop_ref(sop_class, sop_uid) for sop_class, sop_uid in referenced]
    refused = [
        {**_sop_ref(sop_class, sop_uid), FAILURE_REASON: {"vr": "US", "Value": [reason]}}
        for sop_class, sop_uid, reason in failed
    ]
    if stored:
        body[REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": stored}
    if refused:
        body[FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": refused}
    return body


def stow_status(answer: dict[str, Any]) -> int:
    """The HTTP status of an answer built by ``stow_response``."""
    if FAILED_SOP_SEQUENCE not in answer:
        return 200
    return 202 if REFERENCED_SOP_SEQUENCE in answer else 409


def _sop_ref(sop_class: str, sop_uid: str) -> dict[str, Any]:
    ref: dict[str, Any] = {}
    if sop_class:
        ref[REFERENCED_SOP_CLASS_UID] = {"vr": "UI", "Value": [sop_class]}
    if sop_uid:
        ref[REFERENCED_SOP_INSTANCE_UID] = {"vr": "UI", "Value": [sop_uid]}
    return ref


def parse_stow_response(payload: Any) -> StowAnswer:
    """Read the DICOM JSON of a STOW-RS answer into stored UIDs and failed UIDs with reasons."""
    if isinstance(payload, list):  # some servers wrap the one dataset in an array
        payload = payload[0] if payload else {}
    answer = StowAnswer()
    if not isinstance(payload, dict):
        return answer
    for item in _sequence(payload, REFERENCED_SOP_SEQUENCE):
        if uid := _uid_of(item):
            answer.stored.add(uid)
    for item in _sequence(payload, FAILED_SOP_SEQUENCE):
        if uid := _uid_of(item):
            reasons = (item.get(FAILURE_REASON) or {}).get("Value") or [None]
            answer.failed[uid] = int(reasons[0]) if reasons[0] is not None else None
    return answer


def judge_stow_answer(
    status: int, payload: Any, sent: Sequence[str], retry_after_s: float | None = None
) -> StowAnswer:
    """What became of the instances ``sent`` (their SOP instance UIDs) given the hub's answer;
    raises StowRetry when the whole request must be sent again later."""
    if status in (200, 202, 409):
        answer = parse_stow_response(payload)
        if status == 200 and not answer.stored and not answer.failed:
            answer.stored = set(sent)  # 200 without detail: all stored
        if status == 409 and not answer.failed:
            raise StowRetry("the hub answered 409 without a FailedSOPSequence")
        return answer
    if status in REFUSED_STATUSES:
        return StowAnswer(failed=dict.fromkeys(sent, f"HTTP {status}"))
    if status in (401, 403):
        raise StowRetry(f"the hub refused this spoke's token (HTTP {status})")
    raise StowRetry(f"the hub answered HTTP {status}", retry_after_s)


def is_transient_failure(reason: int | str | None) -> bool:
    """Whether a FailureReason is worth retrying (the hub ran out of resources)."""
    return isinstance(reason, int) and (reason & 0xFF00) == OUT_OF_RESOURCES


def failure_text(reason: int | str | None) -> str:
    if reason is None:
        return "refused by the hub (no failure reason given)"
    if isinstance(reason, str):
        return f"refused by the hub: {reason}"
    return f"refused by the hub: FailureReason 0x{reason:04X}"


def _uid_of(item: dict[str, Any]) -> str | None:
    values = (item.get(REFERENCED_SOP_INSTANCE_UID) or {}).get("Value") or []
    return str(values[0]) if values else None


def _sequence(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    items = (body.get(tag) or {}).get("Value") or []
    return [item for item in items if isinstance(item, dict)]
