"""The FHIR export maps every state of the lifecycle (a new state without a Task status fails)."""

from __future__ import annotations

from hub.services.fhir import PRIORITY, REQUEST_STATUS, TASK_STATUS
from shared.enums import CaseStatus, Priority

TASK_CODES = {
    "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
    "in-progress", "on-hold", "failed", "completed", "entered-in-error",
}  # fmt: skip


def test_every_case_status_has_a_task_and_request_status() -> None:
    assert set(TASK_STATUS) == set(CaseStatus) == set(REQUEST_STATUS)
    assert set(TASK_STATUS.values()) <= TASK_CODES
    assert set(PRIORITY) == set(Priority)
