"""pynetdicom event handlers of the bridge: thin, dependencies bound with the handler, and never
letting an exception escape (a DICOM peer gets a status code instead).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

from pynetdicom.dsutils import encode_file_meta

from dicom_bridge.spool import InvalidInstanceError, Spool
from dicom_bridge.worklist import WorklistSource, WorklistUnavailable, find

logger = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC210
PROCESSING_FAILURE = 0xC211  # unexpected error: still in the "cannot understand" range
PENDING = 0xFF00
CANCEL = 0xFE00
UNABLE_TO_PROCESS = 0xC000  # C-FIND failure: the query cannot be read


def handle_echo(event: Any) -> int:
    """Answer C-ECHO: the modality's connectivity test."""
    return SUCCESS


def handle_store(event: Any, spool: Spool, wake: threading.Event | None = None) -> int:
    """Spool a C-STORE instance exactly as received, then wake the forwarder.

    Success is answered only once the file is fsynced and renamed into the spool.
    """
    try:
        uid = str(event.request.AffectedSOPInstanceUID or "")
        if not uid:  # never decode the dataset to find it: the request must carry it
            raise InvalidInstanceError("the C-STORE request has no Affected SOP Instance UID")
        path = spool.put(_part10(event), uid)
    except InvalidInstanceError as exc:
        logger.warning("C-STORE from %s refused: %s", _peer(event), exc)
        return CANNOT_UNDERSTAND
    except OSError as exc:
        logger.error("C-STORE %s: cannot write to the spool: %s", _safe_uid(event), exc)
        return OUT_OF_RESOURCES
    except Exception:
        logger.exception("C-STORE %s from %s failed unexpectedly", _safe_uid(event), _peer(event))
        return PROCESSING_FAILURE
    logger.debug("spooled %s from %s", path.name, _peer(event))
    _count_stored(event)
    if wake is not None:
        wake.set()
    return SUCCESS


def _part10(event: Any) -> list[bytes | memoryview]:
    """The instance as Part 10 pieces: preamble and file meta, then the received data set as a view
    of pynetdicom's buffer (``encoded_dataset`` would copy it twice more)."""
    head = b"\x00" * 128 + b"DICM" + encode_file_meta(event.file_meta)
    return [head, event.request.DataSet.getbuffer()]


def handle_find(event: Any, worklist: WorklistSource) -> Iterator[tuple[int, Any]]:
    """Answer a Modality Worklist C-FIND from the clinic's open cases, one pending item each."""
    try:
        query = event.identifier
        cases = worklist.open_cases()
        items = list(find(query, cases))
    except WorklistUnavailable as exc:
        logger.error("worklist C-FIND from %s: %s", _peer(event), exc)
        yield OUT_OF_RESOURCES, None
        return
    except Exception:
        logger.exception("worklist C-FIND from %s failed", _peer(event))
        yield UNABLE_TO_PROCESS, None
        return
    logger.info("worklist C-FIND from %s: %d item(s)", _peer(event), len(items))
    for item in items:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, item
    yield SUCCESS, None


def handle_open(event: Any) -> None:
    """Set TCP_NODELAY on an accepted connection: DIMSE replies are small and latency-bound."""
    try:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except Exception as exc:  # an option we could not set must not drop the connection
        logger.debug("could not set TCP_NODELAY for %s: %s", _peer(event), exc)


def handle_rejected(event: Any) -> None:
    """Log a refused association so the operator sees which AE title to allow."""
    try:
        logger.warning(
            "association from AE %r at %s rejected (check allowed_aes)",
            event.assoc.requestor.ae_title,
            _peer(event),
        )
    except Exception:
        logger.warning("an association was rejected")


_STORED = "_teleconsult_stored"


def _count_stored(event: Any) -> None:
    with contextlib.suppress(Exception):  # counting is for the log only
        setattr(event.assoc, _STORED, getattr(event.assoc, _STORED, 0) + 1)


def handle_closed(event: Any) -> None:
    """One log line per association, so an operator sees images flow in."""
    try:
        stored = getattr(event.assoc, _STORED, 0)
        if stored:
            logger.info("association from AE %r at %s ended: %d instance(s) spooled",
                        event.assoc.requestor.ae_title, _peer(event), stored)
    except Exception:
        logger.debug("association end not logged", exc_info=True)


def _peer(event: Any) -> str:
    try:
        return f"{event.assoc.requestor.address}:{event.assoc.requestor.port}"
    except Exception:
        return "?"


def _safe_uid(event: Any) -> str:
    try:
        return str(event.request.AffectedSOPInstanceUID)
    except Exception:
        return "?"
