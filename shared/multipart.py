"""multipart/related bodies (RFC 2387) as DICOMweb uses them: STOW-RS requests, WADO-RS answers."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

CRLF = b"\r\n"


class MultipartError(ValueError):
    """The body is not a well-formed multipart message."""


def new_boundary() -> str:
    return "tc-" + secrets.token_hex(16)


def build_related(
    parts: Iterable[bytes], part_type: str = "application/dicom"
) -> tuple[bytes, str]:
    """Return ``(body, content_type)`` for ``parts``, each with ``Content-Type: part_type``."""
    boundary = new_boundary()
    delimiter = b"--" + boundary.encode()
    chunks: list[bytes] = []
    for part in parts:
        chunks += [delimiter, CRLF, b"Content-Type: ", part_type.encode(), CRLF, CRLF, part, CRLF]
    chunks += [delimiter, b"--", CRLF]
    return b"".join(chunks), f'multipart/related; type="{part_type}"; boundary={boundary}'


def parse_related(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Split ``body`` into ``(headers, content)`` parts; header names are lower-cased."""
    if not boundary:
        raise MultipartError("The multipart Content-Type has no boundary.")
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise MultipartError("The body does not contain the multipart boundary.")
    parts: list[tuple[dict[str, str], bytes]] = []
    pos = start + len(delimiter)
    while True:
        if body[pos : pos + 2] == b"--":
            return parts
        if body[pos : pos + 2] != CRLF:
            raise MultipartError("A multipart boundary is not followed by a line break.")
        head_end = body.find(CRLF + CRLF, pos + 2)
        if head_end < 0:
            raise MultipartError("A multipart part has no end of headers.")
        headers = _parse_headers(body[pos + 2 : head_end])
        next_delim = body.find(CRLF + delimiter, head_end + 4)
        if next_delim < 0:
            raise MultipartError("The multipart body is truncated (no closing boundary).")
        parts.append((headers, body[head_end + 4 : next_delim]))
        pos = next_delim + 2 + len(delimiter)


def _parse_headers(raw: bytes) -> dict[str, str]:
    headers = {}
    for line in raw.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MultipartError(f"A multipart part has a malformed header line: {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers
