"""The bridge's DICOM service: Verification, the Modality Worklist and every storage SOP class
pynetdicom knows, with uncompressed and compressed transfer syntaxes accepted and stored as
received.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any

from pydicom import uid
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    Verification,
)

from dicom_bridge.server import DicomServer, ServerConfig, Services
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

# Queries and answers are small data sets: the little endian syntaxes every modality has.
QUERY_TRANSFER_SYNTAXES: list[str] = [uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian]


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


def supported_contexts() -> list[PresentationContext]:
    """The presentation contexts the bridge accepts (as SCP)."""
    contexts = [
        build_context(Verification, QUERY_TRANSFER_SYNTAXES),
        build_context(ModalityWorklistInformationFind, QUERY_TRANSFER_SYNTAXES),
    ]
    contexts += [
        build_context(context.abstract_syntax, TRANSFER_SYNTAXES)
        for context in AllStoragePresentationContexts
        if context.abstract_syntax is not None
    ]
    return contexts


def server_config(settings: Any) -> ServerConfig:
    """The server's configuration from the bridge ``settings``."""
    allowed = calling_aet_allow_list(settings)
    if settings.accept_any_ae:
        logger.warning("accepting any calling AE title (accept_any_ae): for demos only")
    return ServerConfig(
        contexts=supported_contexts(),
        allowed_aes=allowed,
        max_associations=int(settings.max_associations),
        network_timeout_s=float(settings.network_timeout_s),
        tls=tls_context(settings),
    )


def tls_context(settings: Any) -> ssl.SSLContext | None:
    """TLS for DICOM when ``tls_cert`` and ``tls_key`` are set (TLS 1.2 or newer); with
    ``tls_ca`` every modality must also show a certificate that CA signed. None: plain TCP."""
    cert, key = str(settings.tls_cert or ""), str(settings.tls_key or "")
    ca = str(settings.tls_ca or "")
    if not cert and not key:
        if ca:
            raise BridgeConfigError("tls_ca is set but tls_cert and tls_key are not")
        return None
    if not cert or not key:
        raise BridgeConfigError("DICOM over TLS needs both tls_cert and tls_key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
        if ca:
            context.load_verify_locations(cafile=ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise BridgeConfigError(f"cannot load the bridge's TLS certificate or key: {exc}") from None
    logger.info(
        "DICOM over TLS%s",
        " with client certificates required" if ca else " (no client certificates)",
    )
    return context


def start_scp(
    settings: Any,
    spool: Spool,
    wake: threading.Event | None = None,
    worklist: WorklistSource | None = None,
) -> DicomServer:
    """Start the bridge's DICOM server in the background on ``(settings.host, settings.port)``.

    ``server.server_address`` has the bound port (useful with port 0); ``server.shutdown()`` stops
    it.
    """
    config = server_config(settings)
    return DicomServer(
        str(settings.host), int(settings.port), config, Services(spool, wake, worklist)
    ).start()
