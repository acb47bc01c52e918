"""Finding 14 (DICOM): the bridge speaks DICOM over TLS. DCMTK's own ``storescu +tls`` stores
through it with the bridge's certificate checked against a test CA; with a CA configured, a
modality without a client certificate, or one speaking plain TCP, stores nothing."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from config.settings import Settings, load_settings
from dicom_bridge.scp import BridgeConfigError, start_scp
from dicom_bridge.server import DicomServer
from dicom_bridge.spool import Spool
from tests.conftest import need_tool
from tests.dicomgen import make_ct_series, write_series

BRIDGE_AET, MODALITY_AET = "SPOKE1", "MODALITY"


def _openssl(*args: str) -> None:
    subprocess.run([need_tool("openssl"), *args], check=True, capture_output=True, timeout=60)


def _certificate(folder: Path, name: str, ca: tuple[Path, Path], ip: bool) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    _openssl("genrsa", "-out", str(key), "2048")
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
    extensions = folder / f"{name}.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if ip else "")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(extensions),
        "-out", str(cert),
    )  # fmt: skip
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA, the bridge's certificate and a modality's client certificate (openssl)."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    _openssl("genrsa", "-out", str(ca_key), "2048")
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=Teleconsult test CA",
        "-days", "2", "-sha256", "-out", str(ca_cert),
    )  # fmt: skip
    bridge_key, bridge_cert = _certificate(folder, "bridge", (ca_key, ca_cert), ip=True)
    client_key, client_cert = _certificate(folder, "modality", (ca_key, ca_cert), ip=False)
    return {
        "ca": ca_cert,
        "bridge_key": bridge_key,
        "bridge_cert": bridge_cert,
        "client_key": client_key,
        "client_cert": client_cert,
    }


def _settings(tmp_path: Path, **tls: str) -> Settings:
    return load_settings(
        "bridge",
        environ={},
        overrides={
            "host": "127.0.0.1",
            "port": 0,
            "ae_title": BRIDGE_AET,
            "allowed_aes": [MODALITY_AET],
            "spool_dir": str(tmp_path / "spool"),
            **tls,
        },
    )


@pytest.fixture
def tls_bridge(tmp_path: Path, pki: dict[str, Path]) -> Iterator[tuple[DicomServer, Spool]]:
    settings = _settings(
        tmp_path,
        tls_cert=str(pki["bridge_cert"]),
        tls_key=str(pki["bridge_key"]),
        tls_ca=str(pki["ca"]),
    )
    spool = Spool(settings.spool_dir)
    server = start_scp(settings, spool, threading.Event())
    try:
        yield server, spool
    finally:
        server.shutdown()
        spool.close()


def _storescu(port: int, files: list[Path], *tls: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            need_tool("storescu"),
            *tls,
            "-aet",
            MODALITY_AET,
            "-aec",
            BRIDGE_AET,
            "-to",
            "10",
            "-ta",
            "10",
            "-td",
            "10",
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_storescu_over_tls_stores_into_the_spool(
    tls_bridge: tuple[DicomServer, Spool], pki: dict[str, Path], tmp_path: Path
) -> None:
    server, spool = tls_bridge
    files = write_series(make_ct_series(2, rows=16, cols=16), tmp_path / "ct")
    tls = ("+tls", str(pki["client_key"]), str(pki["client_cert"]), "-pw", "+cf", str(pki["ca"]))

    done = _storescu(server.server_address[1], files, *tls)

    assert done.returncode == 0, done.stdout + done.stderr
    for path in files:
        spooled = spool.path_for(str(dcmread(path).SOPInstanceUID))
        assert dcmread(spooled).PixelData == dcmread(path).PixelData


def test_without_tls_or_without_a_client_certificate_nothing_is_stored(
    tls_bridge: tuple[DicomServer, Spool], pki: dict[str, Path], tmp_path: Path
) -> None:
    server, spool = tls_bridge
    files = write_series(make_ct_series(1, rows=16, cols=16), tmp_path / "ct")
    port = server.server_address[1]

    plain = _storescu(port, files)
    anonymous = _storescu(port, files, "+tla", "+cf", str(pki["ca"]))

    assert plain.returncode != 0 and anonymous.returncode != 0
    assert spool.count() == 0


def test_half_a_tls_configuration_is_refused_at_start(tmp_path: Path, pki: dict[str, Path]) -> None:
    spool = Spool(tmp_path / "spool")
    for tls in (
        {"tls_cert": str(pki["bridge_cert"])},
        {"tls_ca": str(pki["ca"])},
        {"tls_cert": str(pki["bridge_cert"]), "tls_key": str(tmp_path / "missing.key")},
    ):
        with pytest.raises(BridgeConfigError):
            start_scp(_settings(tmp_path, **tls), spool)
    spool.close()
