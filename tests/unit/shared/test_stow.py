"""The STOW-RS answer: what the hub builds, pydicom reads as DICOM JSON and the senders read back;
and the one policy every sender follows for the HTTP status."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from shared.stow import (
    StowAnswer,
    StowRetry,
    judge_stow_answer,
    parse_stow_response,
    stow_response,
    stow_status,
)

CT = "1.2.840.10008.5.1.4.1.1.2"


def test_an_answer_is_dicom_json_pydicom_reads_and_the_senders_read_back() -> None:
    answer = stow_response([(CT, "1.2.3"), (CT, "1.2.4")], [(CT, "1.2.5", 0xC000)])
    ds = Dataset.from_json(answer)
    assert [i.ReferencedSOPInstanceUID for i in ds.ReferencedSOPSequence] == ["1.2.3", "1.2.4"]
    (failed,) = ds.FailedSOPSequence
    assert (failed.ReferencedSOPClassUID, failed.FailureReason) == (CT, 0xC000)
    assert parse_stow_response(answer) == StowAnswer({"1.2.3", "1.2.4"}, {"1.2.5": 0xC000})
    assert parse_stow_response([answer]) == parse_stow_response(answer)  # wrapped in an array


@pytest.mark.parametrize(
    ("referenced", "failed", "status"),
    [([(CT, "1")], [], 200), ([(CT, "1")], [(CT, "2", 0xA700)], 202), ([], [(CT, "2", 1)], 409)],
)
def test_the_status_follows_the_answer(
    referenced: list[tuple[str, str]], failed: list[tuple[str, str, int]], status: int
) -> None:
    assert stow_status(stow_response(referenced, failed)) == status


def test_a_bare_200_means_everything_sent_was_stored() -> None:
    assert judge_stow_answer(200, None, ["1", "2"]).stored == {"1", "2"}


@pytest.mark.parametrize("status", [400, 413, 415, 422])
def test_a_request_that_would_be_wrong_again_refuses_each_instance(status: int) -> None:
    assert judge_stow_answer(status, None, ["1", "2"]).failed == {
        "1": f"HTTP {status}",
        "2": f"HTTP {status}",
    }


@pytest.mark.parametrize("status", [401, 403, 404, 408, 429, 500, 503])
def test_anything_else_is_sent_again_later(status: int) -> None:
    with pytest.raises(StowRetry) as raised:
        judge_stow_answer(status, None, ["1"], retry_after_s=7.0)
    assert raised.value.retry_after_s in (7.0, None)


def test_a_409_without_failures_is_sent_again() -> None:
    with pytest.raises(StowRetry):
        judge_stow_answer(409, {}, ["1"])
