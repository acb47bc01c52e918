"""multipart/related bodies (RFC 2387, RFC 2046 framing) as DICOMweb uses them: STOW-RS requests
and WADO-RS answers. The only multipart code of the project, streaming both ways:

- ``RelatedBody`` writes a body from bytes or files a chunk at a time, with its length known
  up front (requests sends Content-Length) and iterable again for a retry;
- ``iter_related`` reads a body from a stream a chunk at a time and hands out each part's
  content as it arrives, so that a receiver never holds a whole request.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

CRLF = b"\r\n"
CHUNK = 1 << 20
MAX_HEADER_BYTES = 16 * 1024  # a part's header block: a few short lines


class MultipartError(ValueError):
    """The body is not a well-formed multipart message."""


def new_boundary() -> str:
    return "tc-" + secrets.token_hex(16)


class RelatedBody:
    """A multipart/related body whose parts (bytes, or files read a chunk at a time) all have
    ``Content-Type: part_type``. ``len()`` is its size in bytes; iterate it for the bytes."""

    def __init__(
        self,
        parts: Sequence[bytes | Path],
        part_type: str = "application/dicom",
        boundary: str | None = None,
    ) -> None:
        self.parts = list(parts)
        self.part_type = part_type
        self.boundary = boundary or new_boundary()
        self._part_head = f"--{self.boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode("ascii")
        self._tail = f"--{self.boundary}--\r\n".encode("ascii")
        sizes = (len(p) if isinstance(p, bytes) else p.stat().st_size for p in self.parts)
        self._length = sum(len(self._part_head) + size + len(CRLF) for size in sizes)
        self._length += len(self._tail)

    @property
    def content_type(self) -> str:
        """The Content-Type header value announcing this body."""
        return f'multipart/related; type="{self.part_type}"; boundary={self.boundary}'

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            yield self._part_head
            if isinstance(part, bytes):
                yield part
            else:
                with part.open("rb") as fh:
                    while chunk := fh.read(CHUNK):
                        yield chunk
            yield CRLF
        yield self._tail


def build_related(
    parts: Iterable[bytes], part_type: str = "application/dicom"
) -> tuple[bytes, str]:
    """``(body, content_type)`` for ``parts`` held in memory (small bodies, tests)."""
    body = RelatedBody(list(parts), part_type)
    return b"".join(body), body.content_type


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class RelatedPart:
    """One part as it arrives: its headers (names lower-cased), then its content in chunks
    (``chunks()``, once, before the next part is asked for)."""

    headers: dict[str, str]
    _reader: _Reader = field(repr=False)
    _done: bool = False

    def chunks(self) -> Iterator[bytes]:
        if self._done:
            return
        yield from self._reader.content()
        self._done = True

    def read_all(self) -> bytes:
        return b"".join(self.chunks())


class _Reader:
    """The parser's state: a buffer over the stream, positioned after a delimiter line."""

    def __init__(self, stream: Readable, boundary: str, chunk_size: int) -> None:
        if not boundary:
            raise MultipartError("The multipart Content-Type has no boundary.")
        self.stream = stream
        self.chunk_size = chunk_size
        self.delimiter = CRLF + b"--" + boundary.encode("latin-1")
        # A CRLF before the body lets the first delimiter (at its very start) be found like the
        # others; the preamble before it is ignored.
        self.buffer = bytearray(CRLF)
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.stream.read(self.chunk_size)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def _find(self, needle: bytes, limit: int | None = None) -> int:
        """Where ``needle`` starts in the buffer, reading on; -1 if not within ``limit``."""
        while (at := self.buffer.find(needle)) < 0:
            if limit is not None and len(self.buffer) > limit:
                return -1
            if not self._fill():
                return -1
        return -1 if limit is not None and at > limit else at

    def skip_preamble(self) -> None:
        at = self._find(self.delimiter)
        if at < 0:
            raise MultipartError("The body does not contain the multipart boundary.")
        del self.buffer[: at + len(self.delimiter)]

    def next_headers(self) -> dict[str, str] | None:
        """After a delimiter: None at the closing one, else the next part's headers."""
        while len(self.buffer) < 2 and self._fill():
            pass
        if self.buffer[:2] == b"--":
            return None
        end = self._find(CRLF, MAX_HEADER_BYTES)  # transport padding, then the line break
        if end < 0 or self.buffer[:end].strip(b" \t"):
            raise MultipartError("A multipart boundary is not followed by a line break.")
        del self.buffer[:end]  # keep the CRLF: an empty header block is then CRLF CRLF
        end = self._find(CRLF + CRLF, MAX_HEADER_BYTES)
        if end < 0:
            raise MultipartError("A multipart part has no end of headers.")
        headers = _parse_headers(bytes(self.buffer[2:end]))
        del self.buffer[: end + 4]
        return headers

    def content(self) -> Iterator[bytes]:
        """The part's content up to the next delimiter, a chunk at a time."""
        keep = len(self.delimiter) - 1  # a delimiter may straddle two reads
        while True:
            at = self.buffer.find(self.delimiter)
            if at >= 0:
                if at:
                    yield bytes(self.buffer[:at])
                del self.buffer[: at + len(self.delimiter)]
                return
            if len(self.buffer) > keep:
                yield bytes(self.buffer[:-keep])
                del self.buffer[:-keep]
            if not self._fill():
                raise MultipartError("The multipart body is truncated (no closing boundary).")


def iter_related(
    stream: Readable, boundary: str, chunk_size: int = 64 * 1024
) -> Iterator[RelatedPart]:
    """The parts of the multipart body read from ``stream``, each streamed as it arrives; a part
    whose chunks were not read is skipped when the next is asked for."""
    reader = _Reader(stream, boundary, chunk_size)
    reader.skip_preamble()
    while (headers := reader.next_headers()) is not None:
        part = RelatedPart(headers, reader)
        yield part
        for _ in part.chunks():  # what the caller left unread
            pass


def parse_related(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a body held in memory into ``(headers, content)`` parts."""
    return [
        (part.headers, part.read_all())
        for part in iter_related(_BytesStream(body), boundary, max(len(body), 1))
    ]


class _BytesStream:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self.data) if size < 0 else self.offset + size
        chunk, self.offset = self.data[self.offset : end], min(end, len(self.data))
        return chunk


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
