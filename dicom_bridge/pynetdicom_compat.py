"""The only door to pynetdicom's internals: what the bridge's own association loop
(``dicom_bridge/server.py``) needs below pynetdicom's public ``AE`` API.

pynetdicom does not promise these names (``_globals`` is private; ``pdu``, ``pdu_primitives``,
``dsutils`` and ``negotiate_as_acceptor`` are its internals), so they are imported here and
nowhere else in the product, and ``setup.cfg`` pins pynetdicom to the versions tested
(``tests/unit/test_layering.py`` keeps it that way). When pynetdicom is upgraded, this module and
``tests/unit/dicom_bridge/test_bridge_server.py`` are what to check;
``bench/dicom_ingest.py`` shows what the custom loop gains over a stock pynetdicom SCP.
"""

from __future__ import annotations

import io

from pydicom.dataset import Dataset
from pynetdicom import __version__ as PYNETDICOM_VERSION
from pynetdicom._globals import APPLICATION_CONTEXT_NAME
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu import (
    A_ABORT_RQ,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    P_DATA_TF,
)
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import negotiate_as_acceptor

__all__ = [
    "A_ABORT_RQ",
    "A_ASSOCIATE",
    "A_ASSOCIATE_AC",
    "A_ASSOCIATE_RJ",
    "A_ASSOCIATE_RQ",
    "A_RELEASE_RP",
    "A_RELEASE_RQ",
    "P_DATA_TF",
    "APPLICATION_CONTEXT_NAME",
    "PYNETDICOM_VERSION",
    "TESTED_VERSIONS",
    "ImplementationClassUIDNotification",
    "ImplementationVersionNameNotification",
    "MaximumLengthNotification",
    "SCP_SCU_RoleSelectionNegotiation",
    "decode_dataset",
    "encode_dataset",
    "negotiate_as_acceptor",
]

# Keep in step with the pin in setup.cfg (install_requires).
TESTED_VERSIONS = (">=3.0", "<3.1")


def decode_dataset(data: bytes, implicit_vr: bool) -> Dataset:
    """A little-endian data set (a C-FIND identifier) as pydicom reads it."""
    return decode(io.BytesIO(data), implicit_vr, True)


def encode_dataset(dataset: Dataset, implicit_vr: bool) -> bytes | None:
    """``dataset`` encoded little endian, or None if pydicom cannot encode it."""
    return encode(dataset, implicit_vr, True)
