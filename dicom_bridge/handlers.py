"""What the bridge does with each DIMSE request, apart from the network: spool a C-STORE as it
arrives, answer a worklist C-FIND. Every outcome is a DICOM status; no exception reaches a peer.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

from dicom_bridge.dimse import (
    CANCEL,
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    PENDING,
    PROCESSING_FAILURE,
    SUCCESS,
    UNABLE_TO_PROCESS,
)
from dicom_bridge.scan import dataset_problem
from dicom_bridge.spool import InvalidInstanceError, Spool, SpoolWriter
from dicom_bridge.worklist import WorklistSource, WorklistUnavailable, find

logger = logging.getLogger(__name__)

PREAMBLE = b"\x00" * 128 + b"DICM"
HEAD_BYTES = 16 * 1024  # the start of each data set kept in memory for the checks in finish()


def _meta_element(element: int, vr: bytes, value: bytes, pad: bytes = b"\x00") -> bytes:
    if len(value) % 2:
        value += pad
    if vr == b"OB":
        return struct.pack("<HH2sHI", 0x0002, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def part10_header(
    sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae: str
) -> bytes:
    """The preamble and File Meta Information (PS3.10 7.1) of an instance received over the
    network."""
    body = b"".join(
        [
            _meta_element(0x0001, b"OB", b"\x00\x01"),
            _meta_element(0x0002, b"UI", sop_class_uid.encode("ascii")),
            _meta_element(0x0003, b"UI", sop_instance_uid.encode("ascii")),
            _meta_element(0x0010, b"UI", transfer_syntax.encode("ascii")),
            _meta_element(0x0012, b"UI", PYNETDICOM_IMPLEMENTATION_UID.encode("ascii")),
            _meta_element(0x0013, b"SH", PYNETDICOM_IMPLEMENTATION_VERSION.encode("ascii"), b" "),
            *(
                [_meta_element(0x0016, b"AE", source_ae.strip().encode("ascii", "replace"), b" ")]
                if source_ae.strip()
                else []
            ),
        ]
    )
    return PREAMBLE + _meta_element(0x0000, b"UL", len(body).to_bytes(4, "little")) + body


class StoredInstance:
    """One C-STORE: its data set is spooled fragment by fragment as it arrives, and ``finish()``
    makes it durable and gives the status to answer. Once something fails the rest of the data
    set is still taken (the peer is sending it) but dropped, and the failure is the answer.

    The data set is never decoded; its first bytes are checked, where they can be read quickly
    (little endian), for what would make the hub refuse it anyway: bytes that are not a data set,
    no SOPInstanceUID, or another one than the request's. The modality hears it at once.
    """

    def __init__(
        self,
        spool: Spool,
        sop_class_uid: str,
        sop_instance_uid: str,
        transfer_syntax: str,
        calling_ae: str,
        peer: str = "?",
        wake: threading.Event | None = None,
    ) -> None:
        self.uid = sop_instance_uid
        self.transfer_syntax = transfer_syntax
        self.peer = peer
        self.wake = wake
        self.received = 0
        self._head = bytearray()
        self.status: int | None = None
        self._writer: SpoolWriter | None = None
        try:
            if not sop_instance_uid:  # never decode the data set to find it: the request carries it
                raise InvalidInstanceError("the C-STORE request has no Affected SOP Instance UID")
            self._writer = spool.begin(sop_instance_uid)
            self._writer.write(
                part10_header(sop_class_uid, sop_instance_uid, transfer_syntax, calling_ae)
            )
        except Exception as exc:
            self._fail(exc)

    def write(self, fragment: bytes | memoryview) -> None:
        """Append a data set fragment."""
        if len(self._head) < HEAD_BYTES:
            self._head += fragment[: HEAD_BYTES - len(self._head)]
        self.received += len(fragment)
        if self._writer is None:
            return
        try:
            self._writer.write(fragment)
        except Exception as exc:
            self._fail(exc)

    def finish(self) -> int:
        """Make the instance durable (fsync) and return the C-STORE status; wakes the forwarder."""
        if self._writer is None:
            return self.status if self.status is not None else PROCESSING_FAILURE
        try:
            if not self.received:
                raise InvalidInstanceError("empty data set")
            problem = dataset_problem(self._head, self.received, self.transfer_syntax, self.uid)
            if problem:
                raise InvalidInstanceError(f"instance {self.uid}: {problem}")
            path = self._writer.commit()
        except Exception as exc:
            self._fail(exc)
            return self.status if self.status is not None else PROCESSING_FAILURE
        finally:
            self.abandon()
        logger.debug("spooled %s from %s", path.name, self.peer)
        if self.wake is not None:
            self.wake.set()
        return SUCCESS

    def abandon(self) -> None:
        """Drop what was received (the association ended mid-instance); nothing is left behind."""
        if self._writer is not None:
            self._writer.discard()
            self._writer = None

    def _fail(self, exc: Exception) -> None:
        if isinstance(exc, InvalidInstanceError):
            logger.warning("C-STORE from %s refused: %s", self.peer, exc)
            self.status = CANNOT_UNDERSTAND
        elif isinstance(exc, OSError):
            logger.error("C-STORE %s: cannot write to the spool: %s", self.uid, exc)
            self.status = OUT_OF_RESOURCES
        else:
            logger.error(
                "C-STORE %s from %s failed unexpectedly", self.uid, self.peer, exc_info=exc
            )
            self.status = PROCESSING_FAILURE
        self.abandon()


def worklist_responses(
    query: Dataset, worklist: WorklistSource, peer: str = "?", is_cancelled: Any = lambda: False
) -> Iterator[tuple[int, Dataset | None]]:
    """Answer a Modality Worklist C-FIND from the clinic's open cases: one pending item each, then
    the final status."""
    try:
        items = list(find(query, worklist.open_cases()))
    except WorklistUnavailable as exc:
        logger.error("worklist C-FIND from %s: %s", peer, exc)
        yield OUT_OF_RESOURCES, None
        return
    except Exception:
        logger.exception("worklist C-FIND from %s failed", peer)
        yield UNABLE_TO_PROCESS, None
        return
    logger.info("worklist C-FIND from %s: %d item(s)", peer, len(items))
    for item in items:
        if is_cancelled():
            yield CANCEL, None
            return
        yield PENDING, item
    yield SUCCESS, None
