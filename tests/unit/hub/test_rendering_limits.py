"""The decompression-bomb guard reads the size a compressed frame declares without decoding it."""

from __future__ import annotations

from io import BytesIO

from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

from hub.services.rendering import codestream_size
from tests.dicomgen import compressed, make_dx


def _frame(syntax: str) -> bytes:
    ds = compressed(make_dx(rows=120, cols=100), syntax)
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def test_jpeg_2000_and_jpeg_ls_declare_their_size() -> None:
    assert codestream_size(_frame(JPEG2000Lossless)) == (100, 120)
    assert codestream_size(_frame(JPEGLSLossless)) == (100, 120)


def test_baseline_jpeg_declares_its_size_and_other_bytes_declare_none() -> None:
    out = BytesIO()
    Image.new("RGB", (33, 17)).save(out, "JPEG")
    assert codestream_size(out.getvalue()) == (33, 17)
    assert codestream_size(b"RLE or anything else") is None
