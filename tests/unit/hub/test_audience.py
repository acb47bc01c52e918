"""Who receives each event: ``hub.domain.audience.rooms_for`` is the one owner."""

from __future__ import annotations

from hub.domain.audience import CaseParties, rooms_for
from shared import protocol

CASE = CaseParties(
    spoke_id=3,
    specialty_code="ortho",
    assigned_to_id=7,
    raised_by_id=11,
    previous_assignee_id=8,
    escalate_to=frozenset({9, 12}),
)


def test_a_case_event_reaches_clinic_specialty_dashboard_and_the_people_of_the_case() -> None:
    assert rooms_for(protocol.CASE_ASSIGNED, CASE) == {
        "spoke:3",
        "specialty:ortho",
        "dashboard",
        "user:7",
        "user:8",
        "user:11",
    }


def test_a_breach_also_reaches_the_supervising_and_on_call_specialists() -> None:
    rooms = rooms_for(protocol.SLA_BREACHED, CASE)
    assert {"user:9", "user:12", "dashboard", "spoke:3"} <= rooms


def test_images_go_to_the_clinic_the_assignee_and_the_dashboard_only() -> None:
    assert rooms_for(protocol.IMAGE_RECEIVED, CASE) == {"spoke:3", "dashboard", "user:7", "user:8"}


def test_a_staff_event_reaches_the_dashboard_and_those_named() -> None:
    assert rooms_for(protocol.SUPERVISION_CHANGED, None, [4, None, 5]) == {
        "dashboard",
        "user:4",
        "user:5",
    }
