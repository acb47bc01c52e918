"""Worklist items are scheduled on the clinic's clock: a modality asks for "today" there."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from dicom_bridge.worklist import worklist_item


@pytest.fixture
def in_india(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_case_raised_before_utc_midnight_is_today_in_the_clinic(in_india: None) -> None:
    case = {
        "uid": "0f8e4c1e-2d3b-4a59-9a6e-5d1f2c3b4a5f",
        "accession_number": "PHC1-0001",
        "created_at": "2026-11-21T20:00:00+00:00",
        "patient": {"pseudonym": "RAMPUR-0042"},
    }

    step = worklist_item(case).ScheduledProcedureStepSequence[0]

    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20261122",
        "013000",
    )
