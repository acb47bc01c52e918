"""shared/multipart.py against outside implementations: what it writes, requests-toolbelt's
decoder and Python's email parser read back; what they write, it reads; and it reads a body a
chunk at a time, never the whole."""

from __future__ import annotations

import email.policy
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.parser import BytesParser
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from requests_toolbelt.multipart.decoder import MultipartDecoder
from requests_toolbelt.multipart.encoder import MultipartEncoder

from shared.multipart import (
    MultipartError,
    RelatedBody,
    build_related,
    iter_related,
    parse_related,
)

PARTS = st.lists(st.binary(max_size=3000), max_size=5)


@given(PARTS)
def test_what_is_built_parses_back_to_the_same_parts(parts: list[bytes]) -> None:
    body, content_type = build_related(parts)
    boundary = content_type.split("boundary=")[1]
    assert [content for _, content in parse_related(body, boundary)] == parts


@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=5))  # RFC 2046: one part or more
def test_requests_toolbelt_reads_what_is_written(parts: list[bytes]) -> None:
    body = RelatedBody(parts)
    data = b"".join(body)
    assert len(data) == len(body)
    decoded = MultipartDecoder(data, body.content_type)
    assert [p.content for p in decoded.parts] == parts
    assert all(p.headers[b"Content-Type"] == b"application/dicom" for p in decoded.parts)


def test_a_body_of_files_is_streamed_and_email_reads_it(tmp_path: Path) -> None:
    files = []
    for n, size in enumerate((0, 1, 70_000, 3 * (1 << 20) + 5)):
        files.append(tmp_path / f"{n}.dcm")
        files[-1].write_bytes(bytes((n + i) % 256 for i in range(size)))
    body = RelatedBody([*files, b"in memory"])
    chunks = list(body)
    assert max(len(c) for c in chunks) <= 1 << 20  # never a whole file at once
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {body.content_type}\r\n\r\n".encode() + b"".join(chunks)
    )
    assert message.get_content_type() == "multipart/related"
    payloads = [part.get_payload(decode=True) for part in message.iter_parts()]
    assert payloads == [f.read_bytes() for f in files] + [b"in memory"]


@settings(max_examples=50)
@given(PARTS)
def test_what_requests_toolbelt_writes_is_read(parts: list[bytes]) -> None:
    encoder = MultipartEncoder(
        fields=[(f"f{n}", (f"{n}.dcm", data, "application/dicom")) for n, data in enumerate(parts)]
        or [("empty", ("e.dcm", b"", "application/dicom"))]
    )
    boundary = encoder.content_type.split("boundary=")[1]
    read = [
        (p.headers["content-type"], p.read_all())
        for p in iter_related(BytesIO(encoder.to_string()), boundary, chunk_size=7)
    ]
    assert read == [("application/dicom", data) for data in parts or [b""]]


def test_what_email_writes_is_read() -> None:
    message = MIMEMultipart("related", type="application/dicom")
    for text in (b"first instance", b"", b"second\r\n--not-the-boundary\r\n"):
        part = MIMEApplication(text, "dicom", _encoder=lambda p: None)
        message.attach(part)
    data = message.as_bytes(policy=email.policy.HTTP)
    head, _, body = data.partition(b"\r\n\r\n")
    boundary = message.get_boundary()
    assert boundary is not None
    parts = [content for _, content in parse_related(body, boundary)]
    assert parts == [b"first instance", b"", b"second\r\n--not-the-boundary\r\n"]


class CountingStream(BytesIO):
    """Records the largest read asked of it."""

    largest = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.largest = max(self.largest, size if size is not None and size >= 0 else 1 << 62)
        return super().read(size)


def test_a_large_part_arrives_in_chunks_of_the_stream() -> None:
    big = bytes(range(256)) * 40_000  # ~10 MB
    data = b"".join(RelatedBody([big, b"small"], boundary="b0undary"))
    stream = CountingStream(data)
    parts = iter_related(stream, "b0undary", chunk_size=64 * 1024)
    first = next(parts)
    sizes = [len(chunk) for chunk in first.chunks()]
    assert sum(sizes) == len(big) and max(sizes) <= 64 * 1024
    assert [p.read_all() for p in parts] == [b"small"]
    assert stream.largest == 64 * 1024


def test_an_unread_part_is_skipped() -> None:
    body, content_type = build_related([b"skipped", b"kept"])
    parts = iter_related(BytesIO(body), content_type.split("boundary=")[1], chunk_size=3)
    next(parts)
    assert next(parts).read_all() == b"kept"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"no boundary here",
        b"--b\r\nContent-Type: x\r\n\r\nunterminated",
        b"--bX\r\n\r\nnot our boundary\r\n--b--\r\n",
        b"--b\r\nno colon here\r\n\r\ncontent\r\n--b--\r\n",
        b"--b\r\nContent-Type: x" + b"y" * 20_000 + b"\r\n\r\n\r\n--b--\r\n",
    ],
    ids=["empty", "no-boundary", "truncated", "no-line-break", "bad-header", "huge-header"],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MultipartError):
        parse_related(body, "b")
