"""Accession numbers: the key that links a modality's images to a case (DICOM SH, <= 16 chars)."""

from __future__ import annotations

import re
import secrets
from datetime import date

MAX_LEN = 16
_ALLOWED = re.compile(r"^[A-Za-z0-9\-_.]{1,16}$")
_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O: read aloud, typed on a console


def make_accession_number(prefix: str, day: date) -> str:
    """A new accession number: up to 4 letters of ``prefix``, the date, 6 random characters.

    Random rather than counted so that a spoke working offline and the hub never collide; the
    stores still retry on the rare repeat (their column is unique).
    """
    head = re.sub(r"[^A-Za-z0-9]", "", prefix).upper()[:4]
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"{head}{day:%y%m%d}{tail}"[:MAX_LEN]


def is_valid_accession_number(value: str) -> bool:
    return bool(_ALLOWED.match(value))
