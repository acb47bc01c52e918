"""``teleconsult send DIR --case UID``: push a folder of DICOM files to the hub's STOW-RS, in
batches, with a progress bar; what the hub refuses is listed with its reason."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
from pydicom.filereader import read_file_meta_info
from tqdm import tqdm

from shared.multipart import build_related


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
            body, content_type = build_related(p.read_bytes() for p in chunk)
            answer = session.post(
                f"{hub_url.rstrip('/')}/dicomweb/studies",
                data=body,
                headers={**headers, "Content-Type": content_type},
                timeout=120,
            )
            if answer.status_code not in (200, 202, 409):
                raise SystemExit(f"The hub answered {answer.status_code}: {_message(answer)}")
            _count(answer.json(), chunk, report)
            bar.update(len(chunk))
    return report


def _count(body: dict, chunk: list[Path], report: SendReport) -> None:  # type: ignore[type-arg]
    by_uid = {}
    for item in (body.get("00081198") or {}).get("Value") or []:
        uid = ((item.get("00081155") or {}).get("Value") or [""])[0]
        reason = ((item.get("00081197") or {}).get("Value") or [0])[0]
        by_uid[uid] = f"refused by the hub (FailureReason 0x{int(reason):04X})"
    report.stored += len((body.get("00081199") or {}).get("Value") or [])
    names = {_sop_uid(p): p.name for p in chunk}
    for uid, reason in by_uid.items():
        report.refused.append((names.get(uid, uid or "(a file without a readable UID)"), reason))


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
