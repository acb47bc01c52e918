"""Small DICOM facts every component checks the same way."""

from __future__ import annotations

import re

# PS3.5 9.1: a UID is digits and dots, at most 64 characters, no empty component.
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def is_valid_uid(uid: str) -> bool:
    """True if ``uid`` is a well-formed DICOM UID."""
    return len(uid) <= 64 and _UID.fullmatch(uid) is not None
