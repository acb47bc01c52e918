"""The three real processes of one clinic's slice: hub, spoke PHC-1 and its DICOM bridge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.hub import RunningHub, hub_process
from tests.support.processes import Process, free_port, running, start, wait_http
from tests.support.waiting import wait_for

MODALITY_AET = "CT_ROOM_1"
BRIDGE_AET = "SPOKE1"


@dataclass
class Slice:
    hub: RunningHub
    spoke_url: str
    spoke: Process
    bridge: Process
    dicom_port: int


def start_spoke(
    tmp: Path, hub: RunningHub, code: str = "PHC-1", extra_env: dict[str, str] | None = None
) -> tuple[Process, str]:
    port = free_port()
    env = {
        "TELECONSULT_SPOKE_PORT": str(port),
        "TELECONSULT_SPOKE_DATA_DIR": str(tmp / "spoke"),
        "TELECONSULT_SPOKE_HUB_URL": hub.url,
        "TELECONSULT_SPOKE_SPOKE_CODE": code,
        "TELECONSULT_SPOKE_SPOKE_TOKEN": hub.spoke_tokens[code],
        "TELECONSULT_SPOKE_SYNC_INTERVAL_S": "0.5",
        **(extra_env or {}),
    }
    process = start("spoke", ["spoke"], env, tmp)
    url = f"http://127.0.0.1:{port}"
    wait_http(process, url + "/healthz")
    return process, url


def start_bridge(
    tmp: Path, hub: RunningHub, code: str = "PHC-1", spoke_url: str = ""
) -> tuple[Process, int]:
    port = free_port()
    env = {
        "TELECONSULT_BRIDGE_HOST": "127.0.0.1",
        "TELECONSULT_BRIDGE_PORT": str(port),
        "TELECONSULT_BRIDGE_AE_TITLE": BRIDGE_AET,
        "TELECONSULT_BRIDGE_ALLOWED_AES": MODALITY_AET,
        "TELECONSULT_BRIDGE_HUB_URL": hub.url,
        "TELECONSULT_BRIDGE_SPOKE_TOKEN": hub.spoke_tokens[code],
        "TELECONSULT_BRIDGE_SPOOL_DIR": str(tmp / "bridge" / "spool"),
        "TELECONSULT_BRIDGE_RETRY_INITIAL_S": "0.2",
        "TELECONSULT_BRIDGE_SPOKE_URL": spoke_url,  # the clinic's spoke: worklist and linking
    }
    process = start("bridge", ["dicom_bridge"], env, tmp)
    wait_for(
        lambda: "listening on" in process.output() or not process.alive(), 30, what="bridge start"
    )
    assert process.alive(), process.output()
    return process, port


@contextmanager
def clinic_slice(tmp: Path, database_url: str | None = None) -> Iterator[Slice]:
    """Hub (eventlet, as in production), spoke and bridge; stopped in reverse order."""
    with ExitStack() as stack:
        hub = stack.enter_context(hub_process(tmp, database_url, async_mode="eventlet"))
        spoke, spoke_url = start_spoke(tmp, hub)
        stack.enter_context(running(spoke))
        bridge, dicom_port = start_bridge(tmp, hub, spoke_url=spoke_url)
        stack.enter_context(running(bridge))
        yield Slice(hub, spoke_url, spoke, bridge, dicom_port)
