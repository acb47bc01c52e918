"""Build the bridge's pynetdicom Application Entity: Verification and every storage SOP class,
with uncompressed and compressed transfer syntaxes accepted and stored as received.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pydicom import uid
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from dicom_bridge.handlers import (
    handle_closed,
    handle_echo,
    handle_find,
    handle_open,
    handle_rejected,
    handle_store,
)
from dicom_bridge.spool import Spool
from dicom_bridge.worklist import WorklistSource

logger = logging.getLogger(__name__)

# Stored as received: the bridge never decodes pixel data, so every encoding is as cheap as another.
TRANSFER_SYNTAXES: list[str] = [
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.RLELossless,
]

# 0 = no limit: the modality may send P-DATA PDUs as large as it likes (fewer round trips).
MAXIMUM_PDU_SIZE = 0


class BridgeConfigError(ValueError):
    """The bridge settings cannot make a safe AE (e.g. nobody would be allowed in)."""


def calling_aet_allow_list(settings: Any) -> list[str]:
    """Return the calling AE titles to require ([] = anyone, only when accept_any_ae is set)."""
    if settings.accept_any_ae:
        return []
    allowed = [str(title).strip() for title in settings.allowed_aes if str(title).strip()]
    if not allowed:
        raise BridgeConfigError(
            "no modality may connect: set TELECONSULT_BRIDGE_ALLOWED_AES (comma separated AE "
            "titles) or, for a demo only, TELECONSULT_BRIDGE_ACCEPT_ANY_AE=true"
        )
    return allowed


def build_ae(settings: Any) -> AE:
    """Return an AE configured from the bridge ``settings``; handlers are bound by start_scp."""
    ae = AE(ae_title=settings.ae_title)
    ae.require_calling_aet = calling_aet_allow_list(settings)
    ae.maximum_pdu_size = MAXIMUM_PDU_SIZE
    ae.add_supported_context(Verification)
    ae.add_supported_context(ModalityWorklistInformationFind)
    for context in AllStoragePresentationContexts:
        if context.abstract_syntax is not None:
            ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    if settings.accept_any_ae:
        logger.warning("accepting any calling AE title (accept_any_ae): for demos only")
    return ae


def event_handlers(
    spool: Spool, wake: threading.Event | None = None, worklist: WorklistSource | None = None
) -> list[Any]:
    """Return the ``(event, handler[, args])`` bindings for ``AE.start_server``."""
    handlers: list[Any] = [
        (evt.EVT_CONN_OPEN, handle_open),
        (evt.EVT_REJECTED, handle_rejected),
        (evt.EVT_RELEASED, handle_closed),
        (evt.EVT_ABORTED, handle_closed),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [spool, wake]),
    ]
    if worklist is not None:
        handlers.append((evt.EVT_C_FIND, handle_find, [worklist]))
    return handlers


def start_scp(
    settings: Any, spool: Spool, wake: threading.Event | None = None, worklist: WorklistSource | None = None
) -> tuple[AE, ThreadedAssociationServer]:
    """Build the AE and start it listening in the background on ``(settings.host, settings.port)``.

    Returns the AE and its server; ``server.server_address`` has the bound port (useful with 0).
    """
    ae = build_ae(settings)
    server = ae.start_server(
        (settings.host, int(settings.port)),
        block=False,
        evt_handlers=event_handlers(spool, wake, worklist),
    )
    if server is None:  # block=False always returns the server
        raise RuntimeError("pynetdicom did not return a server")
    return ae, server
