"""A real bridge SCP on a free port, driven by DCMTK (storescu, echoscu) and a pynetdicom SCU."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE

from config.settings import Settings
from dicom_bridge.scp import BridgeConfigError, server_config
from tests.conftest import need
from tests.dicomgen import compressed, make_dx, make_us_cine, write_series
from tests.unit.dicom_bridge.bridge_support import (
    BRIDGE_AET,
    MODALITY_AET,
    RunningScp,
    dataset_bytes,
)

# DCMTK's tools, not pynetdicom's same-named apps that an activated venv puts first on PATH.
DCMTK_PATH = "/usr/bin:/usr/local/bin:/opt/homebrew/bin"
STORESCU = shutil.which("storescu", path=DCMTK_PATH) or "storescu"
ECHOSCU = shutil.which("echoscu", path=DCMTK_PATH) or "echoscu"


@pytest.fixture
def dcmtk() -> None:
    """Skip without DCMTK on a laptop; fail under CI=true (see tests/conftest.py)."""
    for tool in (STORESCU, ECHOSCU):
        need(Path(tool).is_absolute(), f"{Path(tool).name} is not installed (Debian package dcmtk)")


needs_dcmtk = pytest.mark.usefixtures("dcmtk")


def storescu(
    port: int, files: list[Path], calling: str = MODALITY_AET, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    cmd = [STORESCU, *options, "-aet", calling, "-aec", BRIDGE_AET, "127.0.0.1", str(port)]
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(
        [*cmd, *map(str, files)], env=env, capture_output=True, text=True, timeout=60
    )


def echoscu(port: int, calling: str = MODALITY_AET) -> subprocess.CompletedProcess[str]:
    cmd = [ECHOSCU, "-aet", calling, "-aec", BRIDGE_AET, "127.0.0.1", str(port)]
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)


def assert_spooled_as_sent(scp: RunningScp, files: list[Path]) -> None:
    for original in files:
        spooled = scp.spool.path_for(original.stem)
        assert spooled.exists(), f"{original.name} not spooled"
        assert dataset_bytes(spooled.read_bytes()) == dataset_bytes(original.read_bytes())


@needs_dcmtk
def test_storescu_instances_are_spooled_byte_for_byte(
    scp: RunningScp, ct_files: list[Path]
) -> None:
    result = storescu(scp.port, ct_files)

    assert result.returncode == 0, result.stderr
    assert scp.spool.count() == len(ct_files)
    assert_spooled_as_sent(scp, ct_files)
    assert scp.wake.is_set()


def test_pynetdicom_scu_instances_are_spooled_byte_for_byte(
    scp: RunningScp, ct_files: list[Path]
) -> None:
    ae = AE(ae_title=MODALITY_AET)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=BRIDGE_AET)
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_store(path) for path in ct_files]
    finally:
        assoc.release()

    assert [s.Status for s in statuses] == [0x0000] * len(ct_files)
    assert_spooled_as_sent(scp, ct_files)


def test_sending_the_same_instance_twice_succeeds_once(
    scp: RunningScp, ct_files: list[Path]
) -> None:
    ae = AE(ae_title=MODALITY_AET)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=BRIDGE_AET)
    try:
        statuses = [assoc.send_c_store(ct_files[0]).Status for _ in range(2)]
    finally:
        assoc.release()

    assert statuses == [0x0000, 0x0000]
    assert scp.spool.count() == 1


@needs_dcmtk
def test_unknown_calling_ae_is_rejected(scp: RunningScp, ct_files: list[Path]) -> None:
    result = storescu(scp.port, ct_files, calling="BADAE")

    assert result.returncode != 0
    assert scp.spool.count() == 0


@needs_dcmtk
def test_echoscu_succeeds(scp: RunningScp) -> None:
    result = echoscu(scp.port)
    assert result.returncode == 0, result.stderr


@needs_dcmtk
def test_garbage_on_the_port_does_not_kill_the_server(scp: RunningScp) -> None:
    for junk in (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x01\x00\xff\xff\xff\xff" + os.urandom(512),
    ):
        with socket.create_connection(("127.0.0.1", scp.port), timeout=5) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                sock.recv(1024)  # the server answers (abort) or closes; either is fine

    result = echoscu(scp.port)
    assert result.returncode == 0, result.stderr


def test_an_empty_allow_list_without_accept_any_is_refused(bridge_settings: Settings) -> None:
    with pytest.raises(BridgeConfigError, match="ALLOWED_AES"):
        server_config(bridge_settings.replace(allowed_aes=[], accept_any_ae=False))


def test_accept_any_ae_leaves_the_calling_aet_unchecked(bridge_settings: Settings) -> None:
    config = server_config(bridge_settings.replace(allowed_aes=[], accept_any_ae=True))
    assert config.allowed_aes == []


def test_the_server_accepts_compressed_transfer_syntaxes(bridge_settings: Settings) -> None:
    config = server_config(bridge_settings)
    ct = next(c for c in config.contexts if c.abstract_syntax == CTImageStorage)
    assert {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.1.99",
    } <= set(ct.transfer_syntax)
    assert config.allowed_aes == [MODALITY_AET]


@needs_dcmtk
@pytest.mark.parametrize(
    ("syntax", "option"),
    [(JPEG2000Lossless, "-xv"), (JPEGLSLossless, "-xt"), (RLELossless, "-xr")],
    ids=["jpeg2000", "jpeg-ls", "rle"],
)
def test_storescu_dx_and_multiframe_us_are_spooled_in_their_compressed_syntax(
    scp: RunningScp, tmp_path: Path, syntax: str, option: str
) -> None:
    datasets = [compressed(make_dx(), syntax), compressed(make_us_cine(frames=5), syntax)]
    files = write_series(datasets, tmp_path / "compressed")

    result = storescu(scp.port, files, options=(option, "--required"))  # propose the file's syntax

    assert result.returncode == 0, result.stdout + result.stderr
    assert_spooled_as_sent(scp, files)
    for path in files:
        spooled = dcmread(scp.spool.path_for(path.stem))
        assert spooled.file_meta.TransferSyntaxUID == syntax  # stored as received, not decoded


@needs_dcmtk
def test_storescu_uncompressed_dx_and_us_cine(scp: RunningScp, tmp_path: Path) -> None:
    files = write_series([make_dx(), make_us_cine(frames=12)], tmp_path / "plain")

    result = storescu(scp.port, files)

    assert result.returncode == 0, result.stdout + result.stderr
    assert_spooled_as_sent(scp, files)
    assert dcmread(scp.spool.path_for(files[1].stem)).NumberOfFrames == 12
