"""`teleconsult send DIR --case UID` against a real hub process."""

from __future__ import annotations

from pathlib import Path

import requests
from click.testing import CliRunner

from teleconsult.cli import main
from tests.dicomgen import make_ct_series, write_series
from tests.support.hub import hub_process

CASE = {
    "patient": {"pseudonym": "S-1", "age": 61, "sex": "male"},
    "complaint": "Headache",
    "question": "Bleed?",
    "specialty": "radio",
    "priority": "urgent",
}


def test_a_folder_is_sent_linked_to_the_case_and_refusals_are_named(tmp_path: Path) -> None:
    with hub_process(tmp_path) as hub:
        token = hub.spoke_tokens["PHC-1"]
        case = requests.post(
            f"{hub.url}/api/v1/cases",
            json=CASE,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        folder = tmp_path / "ct"
        files = write_series(make_ct_series(4, accession_number="UNRELATED"), folder)
        (folder / "notes.txt").write_text("not DICOM: skipped")
        (folder / "damaged.dcm").write_bytes(files[3].read_bytes()[:-400])  # pixel data cut short
        files[3].unlink()
        result = CliRunner().invoke(
            main,
            [
                "send",
                str(folder),
                "--case",
                case["uid"],
                "--hub-url",
                hub.url,
                "--token",
                token,
                "--batch",
                "2",
            ],
        )
        assert result.exit_code == 1, result.output
        assert "3 instance(s) at the hub." in result.output
        assert "damaged.dcm: refused by the hub: FailureReason 0xC000" in result.output
        radio = requests.post(
            f"{hub.url}/api/v1/auth/token",
            json={"username": "radio1", "password": "demo"},
            timeout=10,
        ).json()["access_token"]
        studies = requests.get(
            f"{hub.url}/api/v1/cases/{case['id']}/studies",
            headers={"Authorization": f"Bearer {radio}"},
            timeout=10,
        ).json()
        assert sum(s["instances"] for st in studies for s in st["series"]) == 3


def test_without_a_token_it_says_what_to_do(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("TELECONSULT_SPOKE_SPOKE_TOKEN", raising=False)
    monkeypatch.delenv("TELECONSULT_SEND_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["send", str(tmp_path), "--case", "x"])
    assert result.exit_code == 1 and "No token" in result.output
