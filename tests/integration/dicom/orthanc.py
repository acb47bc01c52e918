"""Orthanc (Debian package ``orthanc``) as a clinic PACS for tests and benchmarks: own ports, own
storage, fsync on, no plugins, started as a subprocess and stopped at the end."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.processes import Process, free_port, running, wait_http

ORTHANC_AET = "CLINICPACS"


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc", path="/usr/sbin:/usr/bin:/usr/local/bin:/usr/local/sbin")


@dataclass
class RunningOrthanc:
    url: str
    dicom_port: int
    process: Process

    def upload(self, data: bytes) -> dict[str, str]:
        r = requests.post(f"{self.url}/instances", data=data, timeout=30)
        r.raise_for_status()
        return dict(r.json())

    def store_to(self, modality: str, resources: list[str]) -> dict[str, object]:
        body = {"Resources": resources, "Synchronous": True}
        r = requests.post(f"{self.url}/modalities/{modality}/store", json=body, timeout=300)
        r.raise_for_status()
        return dict(r.json())


def orthanc_config(
    tmp: Path, http_port: int, dicom_port: int, modalities: dict[str, list[object]]
) -> Path:
    storage = tmp / "orthanc-storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "clinic-pacs",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "SyncStorageArea": True,
        "StorageCompression": False,
        "Plugins": [],
        "DicomModalities": modalities,
        "DicomAlwaysAllowStore": True,
        "DicomCheckCalledAet": False,
        "DicomScuTimeout": 30,
        "ConcurrentJobs": 1,
        "StableAge": 1,
        "LogExportedResources": False,
    }
    path = tmp / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@contextmanager
def orthanc(tmp: Path, modalities: dict[str, list[object]]) -> Iterator[RunningOrthanc]:
    """Start Orthanc with ``DicomModalities`` = ``modalities``; yields its REST URL and DICOM port.

    Orthanc's DICOM layer is DCMTK's: ``TCP_NODELAY=1`` turns Nagle's algorithm off, as for the
    tools.
    """
    import os
    import subprocess

    binary = orthanc_binary()
    assert binary is not None
    http_port, dicom_port = free_port(), free_port()
    config = orthanc_config(tmp, http_port, dicom_port, modalities)
    log = tmp / "orthanc.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [binary, str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
    process = Process("orthanc", popen, log)
    with running(process):
        url = f"http://127.0.0.1:{http_port}"
        wait_http(process, url + "/system")
        yield RunningOrthanc(url, dicom_port, process)
