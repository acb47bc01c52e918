"""Helpers of the DICOM bridge tests: Part 10 byte slicing and a small fake hub (STOW-RS over
http.server) that records what it receives.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from pydicom import dcmread
from requests_toolbelt.multipart.decoder import MultipartDecoder

from dicom_bridge.spool import Spool

BRIDGE_AET = "SPOKE1"
MODALITY_AET = "MODALITY"


def dataset_bytes(data: bytes) -> bytes:
    """Return the bytes after the preamble, DICM prefix and file meta group of a Part 10 file."""
    assert data[128:132] == b"DICM"
    assert data[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) group length, explicit VR UL
    group_length = int.from_bytes(data[140:144], "little")
    return data[144 + group_length :]


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/related body into (headers, content) parts with an outside
    implementation (requests-toolbelt), not the project's own."""
    assert content_type.split(";")[0].strip() == "multipart/related"
    assert 'type="application/dicom"' in content_type
    return [
        ({k.decode(): v.decode() for k, v in part.headers.items()}, part.content)
        for part in MultipartDecoder(body, content_type).parts
    ]


def _uid_item(uid: str, reason: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"00081155": {"vr": "UI", "Value": [uid]}}
    if reason is not None:
        item["00081197"] = {"vr": "US", "Value": [reason]}
    return item


@dataclass
class FakeHub:
    """Records STOW-RS requests; answers from ``script`` (status codes), then 200."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    stored: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # While ``gate`` is set but not open, requests wait before answering: to see them in flight.
    gate: threading.Event | None = None
    active: int = 0
    peak: int = 0

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        parts = parse_multipart(body, headers["Content-Type"])
        uids = [str(dcmread(io.BytesIO(data)).SOPInstanceUID) for _, data in parts]
        with self.lock:
            status = self.script.pop(0) if self.script else 200
            self.requests.append({"status": status, "headers": headers, "parts": parts})
            if status == 200:
                self.stored.extend(data for _, data in parts)
        if status == 200:
            return 200, {"00081199": {"vr": "SQ", "Value": [_uid_item(u) for u in uids]}}
        if status == 409:
            items = [_uid_item(u, 0xC000) for u in uids]
            return 409, {"00081198": {"vr": "SQ", "Value": items}}
        return status, None

    def stored_uids(self) -> list[str]:
        with self.lock:
            return [str(dcmread(io.BytesIO(d)).SOPInstanceUID) for d in self.stored]


def handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/dicomweb/studies":
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with hub.lock:
                hub.active += 1
                hub.peak = max(hub.peak, hub.active)
            if hub.gate is not None:
                hub.gate.wait(10)
            status, payload = hub.answer(dict(self.headers.items()), body)
            with hub.lock:
                hub.active -= 1
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class RunningScp:
    """A bridge SCP started by the ``scp`` fixture."""

    spool: Spool
    port: int
    wake: threading.Event
