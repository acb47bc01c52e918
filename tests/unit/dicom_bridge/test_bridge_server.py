"""The bridge's own DICOM Upper Layer loop (dicom_bridge/server.py) over real sockets: pynetdicom
and
DCMTK as well-behaved peers, and a hand-driven peer that builds its PDUs byte by byte to misbehave.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    MPEG2MPML,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)
from pynetdicom import AE, build_role
from pynetdicom.events import EVT_PDU_SENT
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification  # type: ignore[attr-defined]
from pynetdicom.status import code_to_category

from config.settings import Settings
from dicom_bridge.dimse import Command, decode_command, p_data_tf
from dicom_bridge.pynetdicom_compat import (
    A_ASSOCIATE,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RQ,
    APPLICATION_CONTEXT_NAME,
    P_DATA_TF,
    MaximumLengthNotification,
    encode_dataset,
)
from dicom_bridge.scp import start_scp
from dicom_bridge.server import DicomServer
from dicom_bridge.spool import Spool
from dicom_bridge.worklist import WorklistUnavailable
from tests.conftest import need_tool
from tests.dicomgen import make_ct_series, write_series
from tests.support.waiting import wait_for
from tests.unit.dicom_bridge.bridge_support import (
    BRIDGE_AET,
    MODALITY_AET,
    RunningScp,
    dataset_bytes,
)

# What the hand-driven peer proposes: context ID -> (abstract syntax, transfer syntax).
CT_CX, ECHO_CX, MWL_CX, UNSUPPORTED_CX = 1, 3, 5, 7
PRIVATE_SOP_CLASS = "1.2.826.0.1.3680043.9.7433.99.1"  # a SOP class the bridge does not know
PROPOSED = {
    CT_CX: (CTImageStorage, ExplicitVRLittleEndian),
    ECHO_CX: (Verification, ImplicitVRLittleEndian),
    MWL_CX: (ModalityWorklistInformationFind, ImplicitVRLittleEndian),
    UNSUPPORTED_CX: (PRIVATE_SOP_CLASS, ExplicitVRLittleEndian),
}
P_DATA, A_ASSOCIATE_RJ_TYPE, A_RELEASE_RP_TYPE, A_ABORT = 0x04, 0x03, 0x06, 0x07


# -- building messages by hand -------------------------------------------------------------------


def command(**elements: Any) -> bytes:
    """A command set (Implicit VR Little Endian, group 0000) with its group length."""
    ds = Dataset()
    ds.CommandGroupLength = 0
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.CommandGroupLength = len(encode_dataset(ds, True) or b"") - 12
    return bytes(encode_dataset(ds, True) or b"")


def c_store_rq(uid: str | None, message_id: int = 1, sop_class: str = CTImageStorage) -> bytes:
    extra = {"AffectedSOPInstanceUID": uid} if uid is not None else {}
    return command(
        AffectedSOPClassUID=sop_class,
        CommandField=0x0001,
        MessageID=message_id,
        Priority=0,
        CommandDataSetType=0x0000,
        **extra,
    )


def c_echo_rq(message_id: int = 9) -> bytes:
    return command(
        AffectedSOPClassUID=Verification,
        CommandField=0x0030,
        MessageID=message_id,
        CommandDataSetType=0x0101,
    )


def pdv(context_id: int, data: bytes, is_command: bool = True, last: bool = True) -> bytes:
    """One PDV item: length, presentation context ID, message control header, fragment."""
    control = (0x01 if is_command else 0x00) | (0x02 if last else 0x00)
    return (len(data) + 2).to_bytes(4, "big") + bytes([context_id, control]) + data


def pdvs(context_id: int, data: bytes, is_command: bool, fragment: int) -> list[bytes]:
    """``data`` as PDV items of at most ``fragment`` bytes each (without their PDU header)."""
    return [framed[6:] for framed in p_data_tf(context_id, data, is_command, fragment + 6)]


def p_data(*items: bytes) -> bytes:
    """One P-DATA-TF PDU holding the PDV ``items``."""
    return pdu(P_DATA, b"".join(items))


def pdu(pdu_type: int, body: bytes) -> bytes:
    """A PDU of any type: type, reserved byte, length, body."""
    return bytes([pdu_type, 0]) + len(body).to_bytes(4, "big") + body


def association_rq(calling: str = MODALITY_AET, max_pdu: int = 16384) -> bytes:
    """An A-ASSOCIATE-RQ PDU proposing the ``PROPOSED`` contexts, each with one transfer syntax."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT_NAME
    primitive.calling_ae_title, primitive.called_ae_title = calling, BRIDGE_AET
    for context_id, (abstract, transfer) in PROPOSED.items():
        context = build_context(abstract, [transfer])
        context.context_id = context_id
        primitive.presentation_context_definition_list.append(context)
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = max_pdu
    primitive.user_information = [maximum]
    rq = A_ASSOCIATE_RQ()
    rq.from_primitive(primitive)
    return bytes(rq.encode())


class RawPeer:
    """A DICOM peer driven by hand over a plain socket, to send exactly the PDUs a test wants."""

    def __init__(self, port: int, max_pdu: int = 16384) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.rfile = self.sock.makefile("rb")
        self.max_pdu = max_pdu  # what we tell the server we receive
        self.received: list[int] = []  # the length of each PDU received

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_pdu(self) -> tuple[int, bytes]:
        """The next PDU's type and body; EOFError when the server closed the connection."""
        header = self.rfile.read(6)
        if len(header) < 6:
            raise EOFError("connection closed")
        body = self.rfile.read(int.from_bytes(header[2:], "big"))
        self.received.append(len(body))
        return header[0], body

    def request_association(self, calling: str = MODALITY_AET) -> tuple[int, bytes]:
        self.send(association_rq(calling, self.max_pdu))
        return self.read_pdu()

    def associate(self) -> dict[int, int]:
        """Associate; returns the result of each proposed context ID (0 accepted)."""
        pdu_type, body = self.request_association()
        assert pdu_type == 0x02, f"expected A-ASSOCIATE-AC, got PDU type 0x{pdu_type:02X}"
        ac = A_ASSOCIATE_AC()
        ac.decode(pdu(pdu_type, body))
        return {
            int(item.context_id or 0): int(item.result_reason or 0)
            for item in ac.presentation_context
        }

    def send_message(
        self, context_id: int, cmd: bytes, dataset: bytes | None = None, fragment: int = 16384
    ) -> None:
        items = pdvs(context_id, cmd, True, fragment)
        if dataset is not None:
            items += pdvs(context_id, dataset, False, fragment)
        self.send(b"".join(p_data(item) for item in items))

    def response(self) -> Command:
        """Read P-DATA-TF PDUs up to the last fragment of a command set and decode it."""
        data = b""
        while True:
            pdu_type, body = self.read_pdu()
            assert pdu_type == P_DATA, f"expected P-DATA-TF, got PDU type 0x{pdu_type:02X}"
            offset = 0
            while offset < len(body):
                length = int.from_bytes(body[offset : offset + 4], "big")
                control = body[offset + 5]
                if control & 0x01:  # a command fragment
                    data += body[offset + 6 : offset + 4 + length]
                    if control & 0x02:  # the last one
                        return decode_command(data)
                offset += 4 + length

    def echo(self) -> int:
        self.send_message(ECHO_CX, c_echo_rq())
        return int(self.response()[0x0900])

    def release(self) -> int:
        self.send(A_RELEASE_RQ().encode())
        pdu_type, _ = self.read_pdu()
        return pdu_type

    def abort(self) -> None:
        self.send(pdu(A_ABORT, bytes(4)))  # source 0: the service user

    def ending(self) -> str:
        """How the server ended the association: "abort" (A-ABORT PDU) or "closed"."""
        try:
            pdu_type, _ = self.read_pdu()
        except (EOFError, ConnectionResetError):
            return "closed"
        assert pdu_type == A_ABORT, f"expected A-ABORT or a close, got PDU type 0x{pdu_type:02X}"
        return "abort"


@contextmanager
def raw_peer(port: int, max_pdu: int = 16384) -> Iterator[RawPeer]:
    peer = RawPeer(port, max_pdu)
    try:
        yield peer
    finally:
        peer.close()


# -- the server and its spool -------------------------------------------------------------------


@dataclass
class Bridge:
    server: DicomServer
    spool: Spool

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@contextmanager
def running_bridge(
    settings: Settings, worklist: Any = None, plain_files: bool = False
) -> Iterator[Bridge]:
    spool = Spool(settings.spool_dir)
    if plain_files:
        spool._tmpfile = False  # write in tmp/ and rename, as where O_TMPFILE is missing
    server = start_scp(settings, spool, threading.Event(), worklist)
    try:
        yield Bridge(server, spool)
    finally:
        server.shutdown()
        spool.close()


def files_being_written(spool: Spool) -> list[str]:
    """Files under the spool this process holds open with data in them: an instance being received
    (a nameless O_TMPFILE shows here too; the empty spares opened ahead do not count)."""
    root, found = str(spool.root.resolve()), []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(root) and os.stat(f"/proc/self/fd/{fd}").st_size > 0:
                found.append(target)
    return found


def wait_mid_instance(spool: Spool) -> None:
    wait_for(
        lambda: files_being_written(spool), 5, what="the instance being written into the spool"
    )


def assert_nothing_spooled(spool: Spool) -> None:
    wait_for(
        lambda: not files_being_written(spool), 5, what="the unfinished instance to be dropped"
    )
    assert spool.count() == 0
    assert list(spool.incoming_dir.iterdir()) == []
    assert list(spool.tmp_dir.iterdir()) == []


def echo_status(port: int) -> int:
    """C-ECHO from pynetdicom on a new association (fails if the association is not accepted)."""
    ae = AE(ae_title=MODALITY_AET)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=BRIDGE_AET)
    assert assoc.is_established
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


@pytest.fixture
def ct_file(tmp_path: Path) -> Path:
    """One 256x256 CT slice (128 KiB of pixel data) in Explicit VR Little Endian."""
    (path,) = write_series(make_ct_series(1, rows=256, cols=256), tmp_path / "big")
    return path


# -- 1. fragmentation ---------------------------------------------------------------------------


def test_storescu_with_4k_pdus_is_spooled_byte_for_byte(scp: RunningScp, ct_file: Path) -> None:
    storescu = need_tool("storescu")
    result = subprocess.run(
        [
            storescu,
            "--max-send-pdu",
            "4096",
            "-aet",
            MODALITY_AET,
            "-aec",
            BRIDGE_AET,
            "127.0.0.1",
            str(scp.port),
            str(ct_file),
        ],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    spooled = scp.spool.path_for(ct_file.stem).read_bytes()
    assert dataset_bytes(spooled) == dataset_bytes(ct_file.read_bytes())


@pytest.mark.parametrize("packing", ["one PDV per PDU", "all PDVs in one PDU"])
def test_fragmented_command_and_data_set_are_spooled_byte_for_byte(
    scp: RunningScp, ct_file: Path, packing: str
) -> None:
    data = dataset_bytes(ct_file.read_bytes())
    items = pdvs(CT_CX, c_store_rq(ct_file.stem, message_id=5), True, 10)
    items += pdvs(CT_CX, data, False, 1000)
    assert len(items) > 100
    with raw_peer(scp.port) as peer:
        peer.associate()
        peer.send(b"".join(map(p_data, items)) if packing == "one PDV per PDU" else p_data(*items))
        response = peer.response()
        assert peer.release() == A_RELEASE_RP_TYPE

    assert (response[0x0100], response[0x0120], response[0x0900]) == (0x8001, 5, 0x0000)
    assert response[0x1000] == ct_file.stem
    assert dataset_bytes(scp.spool.path_for(ct_file.stem).read_bytes()) == data


# -- 2. the peer goes away mid-instance ---------------------------------------------------------


@pytest.mark.parametrize("plain_files", [False, True], ids=["nameless file", "file in tmp"])
@pytest.mark.parametrize("leave", ["A-ABORT", "socket closed"])
def test_peer_leaving_mid_instance_leaves_nothing_in_the_spool(
    bridge_settings: Settings, ct_file: Path, leave: str, plain_files: bool
) -> None:
    data = dataset_bytes(ct_file.read_bytes())
    with running_bridge(bridge_settings, plain_files=plain_files) as bridge:
        with raw_peer(bridge.port) as peer:
            peer.associate()
            peer.send(p_data(pdv(CT_CX, c_store_rq(ct_file.stem))))
            peer.send(p_data(pdv(CT_CX, data[: len(data) // 2], is_command=False, last=False)))
            wait_mid_instance(bridge.spool)
            if leave == "A-ABORT":
                peer.abort()

        assert_nothing_spooled(bridge.spool)
        assert echo_status(bridge.port) == 0x0000


# -- 3. protocol violations abort the association -----------------------------------------------


ECHO = c_echo_rq()
VIOLATIONS: dict[str, tuple[bool, bytes]] = {  # name: (associate first?, what the peer then sends)
    "PDV on a rejected context": (True, p_data(pdv(UNSUPPORTED_CX, ECHO))),
    "PDV on a never proposed context": (True, p_data(pdv(99, ECHO))),
    "P-DATA before association": (False, p_data(pdv(ECHO_CX, ECHO))),
    "PDV longer than its PDU": (True, p_data(pdv(ECHO_CX, ECHO)[:20])),
    "PDU shorter than a PDV header": (True, p_data(b"\x00\x00\x00")),
    "PDV item of length 0": (True, p_data(bytes(4) + bytes([ECHO_CX, 0x03]))),
    "oversized command": (True, p_data(pdv(ECHO_CX, bytes(70_000)))),
    "data set without a command": (True, p_data(pdv(CT_CX, bytes(64), is_command=False))),
    "command before the data set ended": (
        True,
        p_data(
            pdv(CT_CX, c_store_rq("1.2.3.4")),
            pdv(CT_CX, bytes(64), is_command=False, last=False),
            pdv(ECHO_CX, ECHO),
        ),
    ),
    "unknown PDU type": (True, pdu(0x09, bytes(4))),
    "second A-ASSOCIATE-RQ": (True, association_rq()),
    "A-RELEASE-RQ longer than 4 bytes": (
        True,
        bytes([0x05, 0]) + (0xFFFF_FFF0).to_bytes(4, "big") + bytes(4),
    ),
}


@pytest.mark.parametrize("violation", list(VIOLATIONS))
def test_protocol_violation_aborts_the_association_and_the_server_keeps_serving(
    scp: RunningScp, violation: str
) -> None:
    associate_first, data = VIOLATIONS[violation]
    with raw_peer(scp.port) as peer:
        if associate_first:
            peer.associate()
        with contextlib.suppress(OSError):  # the server may abort before taking all we send
            peer.send(data)
        assert peer.ending() in ("abort", "closed")

    assert_nothing_spooled(scp.spool)
    assert echo_status(scp.port) == 0x0000


def test_silent_peer_mid_instance_is_aborted_after_the_network_timeout(
    bridge_settings: Settings, ct_file: Path
) -> None:
    with (
        running_bridge(bridge_settings.replace(network_timeout_s=0.5)) as bridge,
        raw_peer(bridge.port) as peer,
    ):
        peer.associate()
        peer.send(p_data(pdv(CT_CX, c_store_rq(ct_file.stem))))
        peer.send(p_data(pdv(CT_CX, b"\x08\x00\x05\x00", is_command=False, last=False)))
        wait_mid_instance(bridge.spool)

        assert peer.ending() == "abort"
        assert_nothing_spooled(bridge.spool)


# -- 4. operations the bridge does not offer ----------------------------------------------------

UNSUPPORTED_OPERATIONS = {
    "C-GET-RQ": (
        command(
            AffectedSOPClassUID=CTImageStorage,
            CommandField=0x0010,
            MessageID=11,
            Priority=0,
            CommandDataSetType=0x0000,
        ),
        encode_dataset(Dataset(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3"), False),
    ),
    "N-ACTION-RQ": (
        command(
            RequestedSOPClassUID=CTImageStorage,
            RequestedSOPInstanceUID="1.2.3.4",
            CommandField=0x0130,
            MessageID=11,
            ActionTypeID=1,
            CommandDataSetType=0x0101,
        ),
        None,
    ),
}


@pytest.mark.parametrize("operation", UNSUPPORTED_OPERATIONS)
def test_unsupported_operation_is_answered_0211_and_the_association_goes_on(
    scp: RunningScp, operation: str
) -> None:
    request, identifier = UNSUPPORTED_OPERATIONS[operation]
    with raw_peer(scp.port) as peer:
        peer.associate()
        peer.send_message(CT_CX, request, identifier)
        response = peer.response()

        assert response[0x0100] == decode_command(request).field | 0x8000
        assert (response[0x0120], response[0x0900]) == (11, 0x0211)
        assert peer.echo() == 0x0000
        assert peer.release() == A_RELEASE_RP_TYPE


def test_c_cancel_gets_no_answer_and_the_association_goes_on(scp: RunningScp) -> None:
    with raw_peer(scp.port) as peer:
        peer.associate()
        peer.send_message(
            MWL_CX,
            command(CommandField=0x0FFF, MessageIDBeingRespondedTo=3, CommandDataSetType=0x0101),
        )
        peer.send_message(ECHO_CX, c_echo_rq(message_id=4))
        response = peer.response()  # the echo's: the cancel is not answered

        assert (response[0x0100], response[0x0120], response[0x0900]) == (0x8030, 4, 0x0000)


# -- 5. max_associations ------------------------------------------------------------------------


def test_association_beyond_max_associations_is_rejected_busy_until_one_releases(
    bridge_settings: Settings,
) -> None:
    with running_bridge(bridge_settings.replace(max_associations=1)) as bridge:
        ae = AE(ae_title=MODALITY_AET)
        ae.add_requested_context(Verification)
        first = ae.associate("127.0.0.1", bridge.port, ae_title=BRIDGE_AET)
        assert first.is_established

        with raw_peer(bridge.port) as peer:
            pdu_type, body = peer.request_association()
            assert pdu_type == A_ASSOCIATE_RJ_TYPE
            rj = A_ASSOCIATE_RJ()
            rj.decode(pdu(pdu_type, body))
            assert (rj.result, rj.source, rj.reason_diagnostic) == (
                0x02,
                0x03,
                0x02,
            )  # transient, local limit
            assert peer.ending() == "closed"

        first.release()
        assert wait_for(
            lambda: echo_status(bridge.port) == 0x0000, 5, what="a free association slot"
        )


def test_responses_respect_the_peers_maximum_pdu_length(scp: RunningScp, ct_file: Path) -> None:
    with raw_peer(scp.port, max_pdu=32) as peer:
        peer.associate()
        peer.send_message(
            CT_CX, c_store_rq(ct_file.stem, message_id=7), dataset_bytes(ct_file.read_bytes())
        )
        response = peer.response()

    assert (response[0x0120], response[0x0900], response[0x1000]) == (7, 0x0000, ct_file.stem)
    assert len(peer.received) > 5 and max(peer.received[1:]) <= 32  # [0] is the A-ASSOCIATE-AC


class HoldOn(logging.Handler):
    """Holds the thread that logs a message containing ``text`` until ``go`` is set (at most 5
    s)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.holding, self.go = text, threading.Event(), threading.Event()

    def handle(
        self, record: logging.LogRecord
    ) -> bool:  # not emit(): no handler lock held while waiting
        if self.text in record.getMessage():
            self.holding.set()
            self.go.wait(5)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        pass


def test_a_released_association_no_longer_counts_against_max_associations(
    bridge_settings: Settings, ct_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dicom_bridge.server")
    hold = HoldOn(
        "instance(s) spooled"
    )  # the server thread is past its A-RELEASE-RP, still closing
    logging.getLogger("dicom_bridge.server").addHandler(hold)
    try:
        with running_bridge(bridge_settings.replace(max_associations=1)) as bridge:
            with raw_peer(bridge.port) as first:
                first.associate()
                first.send_message(
                    CT_CX, c_store_rq(ct_file.stem), dataset_bytes(ct_file.read_bytes())
                )
                assert first.response()[0x0900] == 0x0000
                assert first.release() == A_RELEASE_RP_TYPE
            assert hold.holding.wait(5)
            with raw_peer(bridge.port) as second:
                pdu_type, _ = second.request_association()  # as a modality's next storescu run does
            hold.go.set()
    finally:
        hold.go.set()
        logging.getLogger("dicom_bridge.server").removeHandler(hold)

    assert pdu_type == 0x02, "the released association still held the only slot"


# -- 6. a C-STORE the bridge cannot file --------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize(
    ("uid", "empty"),
    [(None, False), ("../../etc/passwd", False), ("", False), ("1.2.3.4", True)],
    ids=["no instance UID", "not a UID", "empty UID", "empty data set"],
)
def test_c_store_the_bridge_cannot_file_is_answered_c210_and_not_spooled(
    scp: RunningScp, ct_file: Path, uid: str | None, empty: bool
) -> None:
    data = b"" if empty else dataset_bytes(ct_file.read_bytes())
    with raw_peer(scp.port) as peer:
        peer.associate()
        peer.send_message(CT_CX, c_store_rq(uid, message_id=21), data, 4096)
        response = peer.response()

        assert (response[0x0100], response[0x0120], response[0x0900]) == (0x8001, 21, 0xC210)
        assert peer.echo() == 0x0000
    assert_nothing_spooled(scp.spool)


@pytest.mark.parametrize("content", ["random bytes", "another instance's data set"])
def test_c_store_of_what_the_hub_would_refuse_is_answered_c210_at_once(
    scp: RunningScp, ct_file: Path, content: str
) -> None:
    data = os.urandom(8192) if content == "random bytes" else dataset_bytes(ct_file.read_bytes())
    with raw_peer(scp.port) as peer:
        peer.associate()
        peer.send_message(CT_CX, c_store_rq("1.2.3.4", message_id=22), data, 4096)

        assert peer.response()[0x0900] == 0xC210
        assert peer.echo() == 0x0000
    assert_nothing_spooled(scp.spool)


def test_c_store_on_a_context_negotiated_for_another_sop_class_is_refused(
    scp: RunningScp, ct_file: Path
) -> None:
    with raw_peer(scp.port) as peer:
        results = peer.associate()
        assert results[UNSUPPORTED_CX] != 0x00
        # The private SOP class was refused at negotiation; the peer sends it on the Verification
        # context.
        data = dataset_bytes(ct_file.read_bytes())
        peer.send_message(ECHO_CX, c_store_rq(ct_file.stem, sop_class=PRIVATE_SOP_CLASS), data)
        status = peer.response()[0x0900]

    assert status == 0x0122  # Refused: SOP Class not supported (what pynetdicom answers)
    assert scp.spool.count() == 0


# -- 7. Modality Worklist -----------------------------------------------------------------------


@dataclass
class FakeWorklist:
    """The spoke's open cases, or its failure."""

    cases: list[dict[str, Any]]
    error: Exception | None = None

    def open_cases(self) -> list[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        return self.cases


def open_case(pseudonym: str, accession: str) -> dict[str, Any]:
    return {
        "uid": f"5f1c1f4e-0000-4000-8000-{accession[-12:].rjust(12, '0')}",
        "token": accession,
        "accession_number": accession,
        "patient": {"pseudonym": pseudonym, "age": 61, "sex": "female"},
        "complaint": "Breathless for a week",
        "question": "Effusion? Tap here or refer?",
        "raised_by": "Dr Rao",
        "created_at": "2026-01-05T09:30:00",
    }


def worklist_query() -> Dataset:
    query = Dataset()
    query.PatientName = query.PatientID = query.AccessionNumber = query.PatientSex = ""
    step = Dataset()
    step.Modality = step.ScheduledProcedureStepStartDate = ""
    step.ScheduledStationAETitle = MODALITY_AET
    query.ScheduledProcedureStepSequence = Sequence([step])
    return query


def worklist_find(
    port: int, transfer_syntax: str = ImplicitVRLittleEndian
) -> list[tuple[int, Dataset | None]]:
    query = worklist_query()
    ae = AE(ae_title=MODALITY_AET)
    ae.add_requested_context(ModalityWorklistInformationFind, transfer_syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title=BRIDGE_AET)
    assert assoc.is_established
    try:
        return [
            (int(status.Status), identifier)
            for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind)
        ]
    finally:
        assoc.release()


@pytest.mark.parametrize(
    "transfer_syntax",
    [ImplicitVRLittleEndian, ExplicitVRLittleEndian],
    ids=["implicit", "explicit"],
)
def test_worklist_c_find_returns_each_open_case_then_success(
    bridge_settings: Settings, transfer_syntax: str
) -> None:
    worklist = FakeWorklist(
        [open_case("RAMPUR-0077", "ACC-77"), open_case("RAMPUR-0078", "ACC-78")]
    )
    with running_bridge(bridge_settings, worklist=worklist) as bridge:
        answers = worklist_find(bridge.port, transfer_syntax)

    assert [status for status, _ in answers] == [0xFF00, 0xFF00, 0x0000]
    items = [identifier for _, identifier in answers[:2]]
    assert [(i.PatientID, i.AccessionNumber, i.PatientSex) for i in items] == [
        ("RAMPUR-0077", "ACC-77", "F"),
        ("RAMPUR-0078", "ACC-78", "F"),
    ]
    assert items[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == MODALITY_AET
    assert answers[2][1] is None


def test_findscu_worklist_query_gets_the_open_cases(
    bridge_settings: Settings, tmp_path: Path
) -> None:
    findscu = need_tool("findscu")
    query = tmp_path / "query.dcm"
    worklist_query().save_as(query, implicit_vr=True, little_endian=True)
    worklist = FakeWorklist(
        [open_case("RAMPUR-0077", "ACC-77"), open_case("RAMPUR-0078", "ACC-78")]
    )
    with running_bridge(bridge_settings, worklist=worklist) as bridge:
        result = subprocess.run(
            [
                findscu,
                "-W",
                "-aet",
                MODALITY_AET,
                "-aec",
                BRIDGE_AET,
                "-X",
                "-od",
                str(tmp_path),
                "127.0.0.1",
                str(bridge.port),
                str(query),
            ],
            env={**os.environ, "TCP_NODELAY": "1"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 0, result.stdout + result.stderr
    answers = sorted(str(dcmread(path).AccessionNumber) for path in tmp_path.glob("rsp*.dcm"))
    assert answers == ["ACC-77", "ACC-78"]


@dataclass
class WorklistHeldUntil:
    """Open cases given only once ``release`` is set: the C-FIND's answers start after it."""

    cases: list[dict[str, Any]]
    release: threading.Event

    def open_cases(self) -> list[dict[str, Any]]:
        assert self.release.wait(10), "the modality never sent its C-CANCEL"
        return self.cases


def test_worklist_c_find_cancelled_by_pynetdicom_ends_with_status_cancel(
    bridge_settings: Settings,
) -> None:
    """pynetdicom's SCU sends a real C-CANCEL once its C-FIND is on the wire; the bridge answers
    no further item, ends the C-FIND with 0xFE00 and the association goes on."""
    cancel_sent = threading.Event()
    worklist = WorklistHeldUntil(
        [open_case(f"RAMPUR-00{n}", f"ACC-{n}") for n in range(70, 75)], cancel_sent
    )
    sent: list[str] = []

    def on_sent(event: Any) -> None:
        if not isinstance(event.pdu, P_DATA_TF):
            return
        if not sent and not event.pdu.presentation_data_value_items[-1].data[0] & 0x01:
            sent.append("query")  # the C-FIND's identifier is out: cancel it (message ID 1)
            context_id = event.assoc.accepted_contexts[0].context_id
            event.assoc.send_c_cancel(1, context_id)
        elif sent == ["query"]:
            sent.append("cancel")
            cancel_sent.set()

    with running_bridge(bridge_settings, worklist=worklist) as bridge:
        ae = AE(ae_title=MODALITY_AET)
        ae.add_requested_context(ModalityWorklistInformationFind, ImplicitVRLittleEndian)
        ae.add_requested_context(Verification)
        assoc = ae.associate(
            "127.0.0.1", bridge.port, ae_title=BRIDGE_AET, evt_handlers=[(EVT_PDU_SENT, on_sent)]
        )
        assert assoc.is_established
        try:
            answers = [
                int(status.Status)
                for status, _ in assoc.send_c_find(
                    worklist_query(), ModalityWorklistInformationFind
                )
            ]
            echo = int(assoc.send_c_echo().Status)
        finally:
            assoc.release()

    assert sent == ["query", "cancel"]
    assert answers == [0xFE00]
    assert echo == 0x0000


def test_worklist_c_find_without_a_worklist_fails(scp: RunningScp) -> None:
    ((status, identifier),) = worklist_find(scp.port)
    assert code_to_category(status) == "Failure" and identifier is None


def test_worklist_c_find_when_the_spoke_is_unavailable_is_answered_a700(
    bridge_settings: Settings,
) -> None:
    worklist = FakeWorklist([], WorklistUnavailable("the spoke did not answer"))
    with running_bridge(bridge_settings, worklist=worklist) as bridge:
        assert worklist_find(bridge.port) == [(0xA700, None)]


# -- 8. release ---------------------------------------------------------------------------------


def test_release_is_answered_and_the_instances_are_counted_in_the_log(
    scp: RunningScp, ct_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dicom_bridge.server")
    with raw_peer(scp.port) as peer:
        peer.associate()
        peer.send_message(CT_CX, c_store_rq(ct_file.stem), dataset_bytes(ct_file.read_bytes()))
        assert peer.response()[0x0900] == 0x0000

        peer.send(A_RELEASE_RQ().encode())
        assert peer.read_pdu() == (A_RELEASE_RP_TYPE, bytes(4))
        assert peer.ending() == "closed"

    wait_for(
        lambda: f"AE '{MODALITY_AET}'" in caplog.text and "1 instance(s) spooled" in caplog.text,
        5,
        what="the association's summary in the log",
    )
    assert scp.spool.count() == 1


# -- 9. shutdown --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["mid-instance", "connected, no association request yet"])
def test_shutdown_aborts_open_associations_promptly_and_keeps_no_half_instance(
    bridge_settings: Settings, ct_file: Path, state: str
) -> None:
    with running_bridge(bridge_settings) as bridge, raw_peer(bridge.port) as peer:
        if state == "mid-instance":
            peer.associate()
            peer.send(p_data(pdv(CT_CX, c_store_rq(ct_file.stem))))
            peer.send(
                p_data(
                    pdv(
                        CT_CX,
                        dataset_bytes(ct_file.read_bytes())[:5000],
                        is_command=False,
                        last=False,
                    )
                )
            )
            wait_mid_instance(bridge.spool)
        else:
            # Taken by an association thread, still waiting for the A-ASSOCIATE-RQ.
            wait_for(lambda: bridge.server._connections, 5, what="the connection to be taken")

        started = time.monotonic()
        bridge.server.shutdown()

        assert time.monotonic() - started < 3
        assert peer.ending() in ("abort", "closed")
        assert_nothing_spooled(bridge.spool)


# -- 10. presentation context negotiation -------------------------------------------------------


def test_unsupported_contexts_are_rejected_the_others_accepted_with_role_selection(
    scp: RunningScp, ct_file: Path
) -> None:
    ae = AE(ae_title=MODALITY_AET)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(PRIVATE_SOP_CLASS, ExplicitVRLittleEndian)
    ae.add_requested_context(
        MRImageStorage, MPEG2MPML
    )  # a transfer syntax the bridge does not take
    role = build_role(
        CTImageStorage, scu_role=True, scp_role=True
    )  # offers to be SCP too, as C-GET SCUs do
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=BRIDGE_AET, ext_neg=[role])
    assert assoc.is_established
    try:
        accepted = {cx.abstract_syntax: cx for cx in assoc.accepted_contexts}
        rejected = {cx.abstract_syntax: cx.result for cx in assoc.rejected_contexts}
        status = assoc.send_c_store(ct_file).Status
    finally:
        assoc.release()

    assert list(accepted) == [CTImageStorage]
    assert (accepted[CTImageStorage].as_scu, accepted[CTImageStorage].as_scp) == (
        True,
        False,
    )  # default roles
    assert rejected == {
        PRIVATE_SOP_CLASS: 0x03,
        MRImageStorage: 0x04,
    }  # abstract / transfer syntax not supported
    assert status == 0x0000
    assert scp.spool.path_for(ct_file.stem).exists()
