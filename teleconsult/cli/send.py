"""``teleconsult send DIR --case UID``: push a folder of DICOM files to the hub's STOW-RS, in
batches, with a progress bar; what the hub refuses is listed with its reason."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from pydicom.filereader import read_file_meta_info
from tqdm import tqdm

from shared.multipart import RelatedBody
from shared.stow import StowAnswer, StowRetry, failure_text, judge_stow_answer


@dataclass
class SendReport:
    stored: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def dicom_files(folder: Path) -> Iterator[Path]:
    """Files that start like DICOM Part 10 (128-byte preamble, then DICM), in name order."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as fh:
            if fh.read(132)[128:] == b"DICM":
                yield path


def send_folder(
    folder: Path,
    hub_url: str,
    token: str,
    case_uid: str,
    batch: int = 20,
    show_progress: bool = True,
) -> SendReport:
    files = list(dicom_files(folder))
    report = SendReport()
    session = requests.Session()
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Case-UID": case_uid,
        "Accept": "application/dicom+json",
    }
    with tqdm(total=len(files), unit="file", disable=not show_progress) as bar:
        for start in range(0, len(files), batch):
            chunk = files[start : start + batch]
            body = RelatedBody(list[bytes | Path](chunk))  # streamed from the files
            answer = session.post(
                f"{hub_url.rstrip('/')}/dicomweb/studies",
                data=body,
                headers={**headers, "Content-Type": body.content_type},
                timeout=120,
            )
            uids = {_sop_uid(p): p.name for p in chunk}
            try:
                judged = judge_stow_answer(answer.status_code, _json(answer), list(uids))
            except StowRetry as exc:
                raise SystemExit(f"{exc}: {_message(answer)}") from None
            _count(judged, uids, report)
            bar.update(len(chunk))
    return report


def _count(answer: StowAnswer, names: dict[str, str], report: SendReport) -> None:
    report.stored += len(answer.stored)
    for uid, reason in answer.failed.items():
        name = names.get(uid, uid or "(a file without a readable UID)")
        report.refused.append((name, failure_text(reason)))


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _sop_uid(path: Path) -> str:
    try:
        return str(read_file_meta_info(path).get("MediaStorageSOPInstanceUID", ""))
    except Exception:  # damaged meta: the hub will say so; the file is then named by its UID
        return ""


def _message(answer: requests.Response) -> str:
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return answer.text[:200]
