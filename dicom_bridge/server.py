"""The bridge's DICOM server: one thread per association, reading the socket itself.

pynetdicom decodes the association request and negotiates the presentation contexts (its
``A_ASSOCIATE_*`` PDU classes and ``negotiate_as_acceptor``). After that the association thread
reads each P-DATA-TF PDU straight from the socket and writes a C-STORE's data set fragments into
the spool as they arrive, without buffering the instance, polling a queue or decoding the data
set: the modality's next instance waits only for the fsync. C-ECHO and the Modality Worklist
C-FIND are served too; other operations are answered "unrecognised operation".

The DICOM Upper Layer as used here (PS3.8 9.3): A-ASSOCIATE-RQ, then P-DATA-TF PDUs carrying
PDV items (command fragments, then data set fragments, each flagged "last" at the end), then
A-RELEASE-RQ or A-ABORT.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, cast

from pydicom.uid import UID, ImplicitVRLittleEndian
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from dicom_bridge.dimse import (
    C_CANCEL_RQ,
    C_ECHO_RQ,
    C_FIND_RQ,
    C_STORE_RQ,
    CANNOT_UNDERSTAND,
    PDV_HEADER_SIZE,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    UNABLE_TO_PROCESS,
    UNRECOGNISED_OPERATION,
    Command,
    CommandError,
    decode_command,
    encode_response,
    p_data_tf,
    pdv_header,
)
from dicom_bridge.handlers import StoredInstance, worklist_responses
from dicom_bridge.pynetdicom_compat import (
    A_ABORT_RQ,
    A_ASSOCIATE,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    APPLICATION_CONTEXT_NAME,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    decode_dataset,
    encode_dataset,
    negotiate_as_acceptor,
)
from dicom_bridge.spool import Spool
from dicom_bridge.worklist import WorklistSource

logger = logging.getLogger(__name__)

# PDU types (PS3.8 9.3.1).
A_ASSOCIATE_RQ_TYPE, P_DATA_TF_TYPE, A_RELEASE_RQ_TYPE, A_ABORT_TYPE = 0x01, 0x04, 0x05, 0x07
PDU_HEADER_SIZE = 6
_HTTP_FIRST_BYTES = set(b"GPHDOCT")  # GET, POST, PUT, HEAD, DELETE, OPTIONS, CONNECT, TRACE
MAX_REQUEST_PDU = 1 << 20  # an A-ASSOCIATE-RQ larger than this is not a modality's
MAX_COMMAND = 1 << 16  # a command set is a few hundred bytes
MAX_QUERY = 1 << 20  # a C-FIND identifier
CHUNK = 1 << 20  # data set bytes are read and written at most this many at a time
# The largest P-DATA-TF PDU we accept, told to the peer. 0 = no limit: instances are streamed to
# disk, never held whole, so a modality may send each in as few PDUs as it likes.
MAXIMUM_PDU_SIZE = 0

# A-ASSOCIATE-RJ (result, source, diagnostic) and A-ABORT reasons.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)
REJECT_BUSY = (0x02, 0x03, 0x02)  # transient, local limit exceeded
ABORT_UNEXPECTED_PDU = 0x02
ABORT_INVALID_PARAMETER = 0x06


class PeerGone(Exception):
    """The peer closed the connection or aborted the association."""


class ProtocolError(Exception):
    """The peer broke the protocol: the association is aborted."""

    def __init__(self, message: str, reason: int = ABORT_INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ServerConfig:
    """What the server accepts: who may call (the called AE title is not checked, as with
    pynetdicom's default), and the presentation contexts."""

    contexts: list[PresentationContext]
    allowed_aes: list[str] = field(default_factory=list)  # empty: anyone (demo mode)
    max_associations: int = 10
    artim_timeout_s: float = 30.0  # to receive the A-ASSOCIATE-RQ after connecting
    network_timeout_s: float = 120.0  # silence after which an association is aborted
    # DICOM over TLS (PS3.15 B.1, e.g. DCMTK's storescu +tls): every connection must complete a
    # TLS handshake before its A-ASSOCIATE-RQ is read. None: plain TCP.
    tls: ssl.SSLContext | None = None


@dataclass
class Services:
    """Where requests go: the spool for C-STORE, the worklist for C-FIND (None: no worklist)."""

    spool: Spool
    wake: threading.Event | None = None
    worklist: WorklistSource | None = None


class Association:
    """One accepted connection, from A-ASSOCIATE-RQ to release or abort, in its own thread."""

    def __init__(
        self,
        sock: socket.socket,
        address: tuple[str, int],
        config: ServerConfig,
        services: Services,
        server: DicomServer,
    ) -> None:
        self.sock = sock
        self.peer = f"{address[0]}:{address[1]}"
        self.config = config
        self.services = services
        self.server = server
        self.rfile = cast(io.BufferedReader, sock.makefile("rb", buffering=1 << 16))
        self.calling_ae = ""
        self.admitted = False  # counted against max_associations
        self.accepted: dict[int, PresentationContext] = {}
        self.peer_max_pdu = 0
        self.stored = 0
        self._chunk = memoryview(bytearray(CHUNK))
        # The message being received: its command bytes, then its decoded request and context.
        self._command = bytearray()
        self._request: Command | None = None
        self._context_id = 0
        self._instance: StoredInstance | None = None
        self._dataset: bytearray | None = None
        # The C-FIND being answered (only a C-CANCEL of it may arrive meanwhile), and whether it
        # was.
        self._finding: Command | None = None
        self._find_cancelled = False

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # replies are small
        try:
            self.sock.settimeout(self.config.artim_timeout_s)
            if not self._negotiate():
                return
            self.sock.settimeout(self.config.network_timeout_s)
            self._serve()
        except ProtocolError as exc:
            logger.warning("association from %s aborted: %s", self.peer, exc)
            self._send_abort(exc.reason)
        except PeerGone:
            logger.info(
                "association from AE %r at %s ended by the peer", self.calling_ae, self.peer
            )
        except TimeoutError:
            logger.warning("association from %s aborted: silent for too long", self.peer)
            self._send_abort(0x00)
        except OSError as exc:
            logger.info("association from %s lost: %s", self.peer, exc)
        except Exception:
            logger.exception("association from %s failed", self.peer)
            self._send_abort(0x00)
        finally:
            if self._instance is not None:  # an instance never answered is never kept
                logger.warning(
                    "association from AE %r at %s ended during instance %s: dropped, the "
                    "modality must send it again",
                    self.calling_ae,
                    self.peer,
                    self._instance.uid,
                )
                self._instance.abandon()
            if self.stored:
                logger.info(
                    "association from AE %r at %s ended: %d instance(s) spooled",
                    self.calling_ae,
                    self.peer,
                    self.stored,
                )
            with contextlib.suppress(OSError):
                self.rfile.close()

    def _negotiate(self) -> bool:
        """Read the A-ASSOCIATE-RQ and accept or reject it; True if accepted."""
        pdu_type, length = self._pdu_header()
        if pdu_type == A_ABORT_TYPE:
            raise PeerGone()
        if pdu_type != A_ASSOCIATE_RQ_TYPE:
            raise ProtocolError(
                f"not a DICOM association request (first byte 0x{pdu_type:02X}; "
                f"{'an HTTP client?' if pdu_type in _HTTP_FIRST_BYTES else 'not a DICOM peer?'})",
                ABORT_UNEXPECTED_PDU,
            )
        if length > MAX_REQUEST_PDU:
            raise ProtocolError(f"association request of {length} bytes")
        raw = self._read(length)
        pdu = A_ASSOCIATE_RQ()
        try:
            pdu.decode(bytes([pdu_type, 0]) + length.to_bytes(4, "big") + raw)
            request = pdu.to_primitive()
        except Exception as exc:
            raise ProtocolError(f"unreadable association request: {exc}") from exc
        self.calling_ae = str(request.calling_ae_title or "").strip()
        if self.config.allowed_aes and self.calling_ae not in self.config.allowed_aes:
            logger.warning(
                "association from AE %r at %s rejected: not in allowed_aes %s (TELECONSULT_BRIDGE_"
                "ALLOWED_AES; AE titles are case sensitive)",
                self.calling_ae,
                self.peer,
                ",".join(self.config.allowed_aes),
            )
            self._send_reject(REJECT_CALLING_AE)
            return False
        if not self.server.admit():
            logger.warning(
                "association from AE %r at %s rejected: %d associations already open",
                self.calling_ae,
                self.peer,
                self.config.max_associations,
            )
            self._send_reject(REJECT_BUSY)
            return False
        self.admitted = True
        roles: dict[UID, tuple[bool | None, bool | None]] = {}
        for item in request.user_information:
            if isinstance(item, MaximumLengthNotification):
                self.peer_max_pdu = int(item.maximum_length_received or 0)
            elif isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.sop_class_uid:
                roles[UID(str(item.sop_class_uid))] = (item.scu_role, item.scp_role)
        results, role_items = negotiate_as_acceptor(
            request.presentation_context_definition_list, self.config.contexts, roles or None
        )
        self.accepted = {
            int(cx.context_id): cx for cx in results if cx.result == 0x00 and cx.context_id
        }
        self._send_accept(request, results, role_items)
        self.services.spool.prepare()
        logger.debug(
            "association from AE %r at %s accepted, %d context(s)",
            self.calling_ae,
            self.peer,
            len(self.accepted),
        )
        return True

    def _serve(self) -> None:
        while True:
            pdu_type, length = self._pdu_header()
            if pdu_type == P_DATA_TF_TYPE:
                self._p_data(length)
            elif pdu_type == A_RELEASE_RQ_TYPE:
                self._read(self._fixed_length(pdu_type, length))
                self.server.discharge(self)  # the slot is free once the modality hears it released
                self.sock.sendall(A_RELEASE_RP().encode())
                logger.debug("association from %s released", self.peer)
                return
            elif pdu_type == A_ABORT_TYPE:
                self._read(self._fixed_length(pdu_type, length))
                raise PeerGone()
            else:
                raise ProtocolError(f"unexpected PDU type 0x{pdu_type:02X}", ABORT_UNEXPECTED_PDU)

    # -- P-DATA ----------------------------------------------------------------------------------

    def _p_data(self, length: int) -> None:
        remaining = length
        while remaining > 0:
            if remaining < PDV_HEADER_SIZE:
                raise ProtocolError("P-DATA-TF ends inside a PDV item header")
            size, context_id, is_command, last = pdv_header(self._read(PDV_HEADER_SIZE))
            remaining -= PDV_HEADER_SIZE + size
            if remaining < 0:
                raise ProtocolError("PDV item runs past the end of its P-DATA-TF")
            if context_id not in self.accepted:
                raise ProtocolError(
                    f"data on presentation context {context_id}, which was not accepted"
                )
            if is_command:
                self._command_fragment(context_id, size, last)
            else:
                self._dataset_fragment(context_id, size, last)

    def _command_fragment(self, context_id: int, size: int, last: bool) -> None:
        if self._request is not None:
            raise ProtocolError("a command arrived before the previous message's data set ended")
        if len(self._command) + size > MAX_COMMAND:
            raise ProtocolError("command set too large")
        if self._command and context_id != self._context_id:
            raise ProtocolError("a command's fragments arrived on different presentation contexts")
        self._context_id = context_id
        self._command += self._read(size)
        if not last:
            return
        try:
            request = decode_command(bytes(self._command))
        except CommandError as exc:
            raise ProtocolError(f"unreadable command: {exc}") from exc
        finally:
            self._command.clear()
        if self._finding is not None and request.field != C_CANCEL_RQ:
            raise ProtocolError("a request other than C-CANCEL arrived while a C-FIND was answered")
        self._request = request
        context = self.accepted[context_id]
        if request.field == C_STORE_RQ and request.sop_class_uid != context.abstract_syntax:
            logger.warning(
                "C-STORE of SOP class %s from %s on a context for %s: refused",
                request.sop_class_uid,
                self.peer,
                context.abstract_syntax,
            )  # its data set is read and dropped
        elif request.field == C_STORE_RQ:
            self._instance = StoredInstance(
                self.services.spool,
                request.sop_class_uid,
                request.sop_instance_uid,
                str(context.transfer_syntax[0]),
                self.calling_ae,
                self.peer,
                self.services.wake,
            )
        elif request.has_dataset:
            self._dataset = bytearray()
        if not request.has_dataset:
            self._complete()

    def _dataset_fragment(self, context_id: int, size: int, last: bool) -> None:
        if self._request is None or context_id != self._context_id:
            raise ProtocolError("a data set arrived without its command")
        if self._dataset is not None:
            if len(self._dataset) + size > MAX_QUERY:
                raise ProtocolError("request data set too large")
            self._dataset += self._read(size)
        else:  # into the spool, or (an instance refused before its data) nowhere
            self._stream_into(self._instance, size)
        if last:
            self._complete()

    def _stream_into(self, instance: StoredInstance | None, size: int) -> None:
        """Pass ``size`` bytes from the socket to ``instance`` (None: drop them), a chunk at a
        time."""
        while size:
            view = self._chunk[: min(size, CHUNK)]
            got = self.rfile.readinto(view)
            if not got:
                raise PeerGone()
            if instance is not None:
                instance.write(view[:got])
            size -= got

    def _complete(self) -> None:
        """The whole message is in: act on it and answer."""
        request, context_id, dataset = self._request, self._context_id, self._dataset
        instance = self._instance
        self._request, self._instance, self._dataset = None, None, None
        assert request is not None
        if request.field == C_STORE_RQ:
            if instance is None:
                status = SOP_CLASS_NOT_SUPPORTED
            elif not request.has_dataset:
                instance.abandon()
                status = CANNOT_UNDERSTAND
            else:
                status = instance.finish()
            if status == SUCCESS:
                self.stored += 1
            self._respond(request, context_id, status, with_instance=True)
            self.services.spool.prepare()  # while the modality sends the next one
        elif request.field == C_ECHO_RQ:
            self._respond(request, context_id, SUCCESS)
        elif request.field == C_FIND_RQ:
            self._find(request, context_id, dataset)
        elif request.field == C_CANCEL_RQ:
            # Only answered through the C-FIND it cancels (its final status, 0xFE00); one for a
            # request already answered is ignored (PS3.7 9.3.2.3).
            if self._finding is not None and request.responding_to == self._finding.message_id:
                self._find_cancelled = True
        else:
            logger.warning(
                "%s from %s: operation 0x%04X not supported",
                self.calling_ae,
                self.peer,
                request.field,
            )
            self._respond(request, context_id, UNRECOGNISED_OPERATION)

    def _find(self, request: Command, context_id: int, dataset: bytearray | None) -> None:
        context = self.accepted[context_id]
        worklist = self.services.worklist
        if (
            worklist is None
            or context.abstract_syntax != ModalityWorklistInformationFind
            or not dataset
        ):
            self._respond(request, context_id, UNABLE_TO_PROCESS)
            return
        implicit = context.transfer_syntax[0] == ImplicitVRLittleEndian
        try:
            query = decode_dataset(bytes(dataset), implicit)
        except Exception as exc:
            logger.warning("worklist C-FIND from %s: unreadable query: %s", self.peer, exc)
            self._respond(request, context_id, UNABLE_TO_PROCESS)
            return
        self._finding, self._find_cancelled = request, False
        try:
            answers = worklist_responses(query, worklist, self.peer, self._cancel_arrived)
            for status, item in answers:
                identifier = encode_dataset(item, implicit) if item is not None else None
                if item is not None and identifier is None:
                    logger.error("worklist item could not be encoded; skipped")
                    continue
                self._respond(request, context_id, status, identifier=identifier)
        finally:
            self._finding = None
        if self._find_cancelled:
            logger.info("worklist C-FIND from %s cancelled by the peer", self.peer)

    def _cancel_arrived(self) -> bool:
        """Read whatever the peer sent while the C-FIND is answered; True once it cancelled it.

        Only a C-CANCEL (or an A-ABORT) may come: the bridge does not negotiate asynchronous
        operations, so the peer waits for the final answer before any other request.
        """
        while not self._find_cancelled and self._input_waiting():
            pdu_type, length = self._pdu_header()
            if pdu_type == A_ABORT_TYPE:
                self._read(self._fixed_length(pdu_type, length))
                raise PeerGone()
            if pdu_type != P_DATA_TF_TYPE:
                raise ProtocolError(
                    f"PDU type 0x{pdu_type:02X} while a C-FIND was answered", ABORT_UNEXPECTED_PDU
                )
            self._p_data(length)
        return self._find_cancelled

    def _input_waiting(self) -> bool:
        """Whether the peer has sent something not yet read, without waiting for it."""
        self.sock.setblocking(False)
        try:
            return bool(self.rfile.peek(1))
        except BlockingIOError:
            return False
        finally:
            self.sock.settimeout(self.config.network_timeout_s)

    # -- sending ---------------------------------------------------------------------------------

    def _respond(
        self,
        request: Command,
        context_id: int,
        status: int,
        *,
        identifier: bytes | None = None,
        with_instance: bool = False,
    ) -> None:
        command = encode_response(
            request, status, dataset=identifier is not None, with_instance=with_instance
        )
        pdus = list(p_data_tf(context_id, command, True, self.peer_max_pdu))
        if identifier is not None:
            pdus += p_data_tf(context_id, identifier, False, self.peer_max_pdu)
        self.sock.sendall(b"".join(pdus))

    def _send_accept(
        self,
        request: A_ASSOCIATE,
        results: list[PresentationContext],
        role_items: list[SCP_SCU_RoleSelectionNegotiation],
    ) -> None:
        primitive = A_ASSOCIATE()
        primitive.application_context_name = APPLICATION_CONTEXT_NAME
        primitive.calling_ae_title = request.calling_ae_title
        primitive.called_ae_title = request.called_ae_title
        primitive.result = 0x00
        primitive.result_source = 0x01
        primitive.presentation_context_definition_results_list = results
        maximum = MaximumLengthNotification()
        maximum.maximum_length_received = MAXIMUM_PDU_SIZE
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
        primitive.user_information = [maximum, implementation, version, *role_items]
        self.sock.sendall(A_ASSOCIATE_AC(primitive).encode())

    def _send_reject(self, reason: tuple[int, int, int]) -> None:
        primitive = A_ASSOCIATE()
        primitive.result, primitive.result_source, primitive.diagnostic = reason
        with contextlib.suppress(OSError):
            self.sock.sendall(A_ASSOCIATE_RJ(primitive).encode())

    def _send_abort(self, reason: int) -> None:
        pdu = A_ABORT_RQ()
        pdu.source = 0x02  # the service provider
        pdu.reason_diagnostic = reason
        with contextlib.suppress(OSError):
            self.sock.sendall(pdu.encode())

    # -- receiving -------------------------------------------------------------------------------

    @staticmethod
    def _fixed_length(pdu_type: int, length: int) -> int:
        """A-RELEASE and A-ABORT PDUs are 4 bytes long (PS3.8 9.3.6-9.3.8): never trust more."""
        if length != 4:
            raise ProtocolError(f"PDU type 0x{pdu_type:02X} of length {length}")
        return length

    def _pdu_header(self) -> tuple[int, int]:
        header = self._read(PDU_HEADER_SIZE)
        return header[0], int.from_bytes(header[2:6], "big")

    def _read(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise PeerGone()
        return data

    def abort(self) -> None:
        """Cut the connection (server shutdown): the thread ends, an unfinished instance is
        dropped."""
        self._send_abort(0x00)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True  # server_close() waits for the association threads

    def __init__(self, address: tuple[str, int], owner: DicomServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.owner.accepted(request)  # known before its thread starts, so shutdown() can cut it
        return True


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        owner = self.server.owner
        sock = self._secured(owner.config)
        if sock is None:
            return
        association = Association(sock, self.client_address, owner.config, owner.services, owner)
        owner.opened(self.request, association)
        try:
            association.run()
        finally:
            owner.closed(self.request, association)

    def _secured(self, config: ServerConfig) -> socket.socket | None:
        """The connection, after the TLS handshake when TLS is on (in this association's thread,
        bounded by the ARTIM timeout); None when the handshake fails (e.g. a plain client)."""
        if config.tls is None:
            return cast(socket.socket, self.request)
        raw = cast(socket.socket, self.request)
        raw.settimeout(config.artim_timeout_s)
        try:
            return config.tls.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.warning(
                "connection from %s:%s refused: no TLS handshake (%s)",
                *self.client_address[:2],
                getattr(exc, "reason", None) or exc,
            )
            with contextlib.suppress(OSError):
                raw.close()
            return None


class DicomServer:
    """Listens on ``(host, port)`` and runs each association in a thread until ``shutdown()``."""

    def __init__(self, host: str, port: int, config: ServerConfig, services: Services) -> None:
        self.config = config
        self.services = services
        self._connections: dict[socket.socket, Association | None] = {}
        self._admitted = 0
        self._lock = threading.Lock()
        self._tcp = _TCPServer((host, port), self)
        self._thread = threading.Thread(
            target=self._tcp.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="dicom-server",
            daemon=True,
        )

    @property
    def server_address(self) -> tuple[Any, ...]:
        return tuple(self._tcp.server_address)

    def start(self) -> DicomServer:
        self._thread.start()
        return self

    def accepted(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections[sock] = None

    def opened(self, sock: socket.socket, association: Association) -> None:
        with self._lock:
            self._connections[sock] = association

    def admit(self) -> bool:
        """Count a negotiating association in, unless ``max_associations`` are already open."""
        with self._lock:
            if self._admitted >= self.config.max_associations:
                return False
            self._admitted += 1
            return True

    def discharge(self, association: Association) -> None:
        """No longer count ``association`` against ``max_associations`` (released or ended)."""
        with self._lock:
            if association.admitted:
                association.admitted = False
                self._admitted -= 1

    def closed(self, sock: socket.socket, association: Association) -> None:
        self.discharge(association)
        with self._lock:
            self._connections.pop(sock, None)

    def shutdown(self) -> None:
        """Stop accepting, abort open associations and wait for their threads."""
        if self._thread.is_alive():
            self._tcp.shutdown()
        with self._lock:
            connections = list(self._connections.items())
        for sock, association in connections:
            if association is not None:
                association.abort()
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._tcp.server_close()
        self._thread.join(5)
