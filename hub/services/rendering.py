"""Pixels out of stored instances: raw frames for WADO-RS and PNG/JPEG previews with a window.

Pure CPU work on a file: no session, no Flask. The pipeline is the standard one (PS3.3 C.11):
stored values, then the modality LUT (rescale to e.g. Hounsfield units), then the VOI LUT or a
window, MONOCHROME1 inverted last. Decoders for compressed syntaxes are pydicom's plugins:
pylibjpeg-openjpeg (JPEG 2000), pyjpegls (JPEG-LS), pylibjpeg-rle or pydicom's own RLE, Pillow
(baseline JPEG); pylibjpeg-libjpeg (GPL) is used for lossless JPEG only when installed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, get_frame
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut
from pydicom.pixels.utils import pixel_array

T = TypeVar("T")

# Window presets for CT, in Hounsfield units: (center, width).
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
WINDOW_FUNCTIONS = ("linear", "linear_exact", "sigmoid")

# Media types of frames kept in their stored (compressed) encoding, by transfer syntax.
FRAME_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.5": "image/x-dicom-rle",
}
_UNCOMPRESSED = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
}


# Pixels per frame the hub decodes at most (config ``max_render_pixels``): decoding and windowing
# take about 30 bytes per pixel, so a small compressed file must not make the hub decode a huge
# image (a decompression bomb). 25 million covers mammography (4096 x 5120).
DEFAULT_MAX_PIXELS = 25_000_000


class RenderError(ValueError):
    """The instance cannot be rendered as asked (no pixels, no such frame, a bad window)."""


class ImageTooLarge(RenderError):
    """Decoding this frame would take more pixels than the hub allows (judged before decoding)."""


@dataclass(frozen=True)
class Window:
    """A VOI window: center and width in modality units (e.g. HU), and its function."""

    center: float
    width: float
    function: str = "linear"


def parse_window(text: str | None) -> Window | None:
    """Read ``window=center,width[,function]`` (PS3.18) or a preset name (``lung``, ``bone``...)."""
    if not text:
        return None
    text = text.strip().lower()
    if text in PRESETS:
        return Window(*PRESETS[text])
    parts = [p.strip() for p in text.split(",")]
    try:
        center, width = float(parts[0]), float(parts[1])
    except (IndexError, ValueError):
        raise RenderError(
            f"window must be center,width[,function] or one of {', '.join(PRESETS)}"
        ) from None
    function = parts[2] if len(parts) > 2 and parts[2] else "linear"
    if function not in WINDOW_FUNCTIONS or width <= 0 or (width < 1 and function == "linear"):
        raise RenderError(
            "window width must be positive and the function linear, linear_exact or sigmoid"
        )
    return Window(center, width, function)


def run_cpu(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in eventlet's thread pool when the hub runs under eventlet, else directly.

    Decoding and encoding hold the CPU for tens of milliseconds: on the event loop they would
    stall every Socket.IO client of the process.
    """
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        from eventlet import tpool

        return tpool.execute(fn, *args)  # type: ignore[no-any-return]
    return fn(*args)


# -- frames ----------------------------------------------------------------------------------


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _check_frame(ds: Dataset, frame: int) -> None:
    if "PixelData" not in ds:
        raise RenderError("this instance has no pixel data")
    total = number_of_frames(ds)
    if not 1 <= frame <= total:
        raise RenderError(f"frame {frame} does not exist (the instance has {total})")


def stored_frame(path: Path, frame: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[bytes, str]:
    """Return frame ``frame`` (1-based) as stored, and its media type.

    Uncompressed frames are raw little-endian pixels (``application/octet-stream``); compressed
    ones are the frame's encapsulated bitstream (e.g. ``image/jp2``), as PS3.18 allows.
    """
    ds = dcmread(path)
    _check_frame(ds, frame)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if syntax in FRAME_MEDIA_TYPES:
        total = number_of_frames(ds)
        for index, data in enumerate(generate_frames(ds.PixelData, number_of_frames=total), 1):
            if index == frame:
                return data, FRAME_MEDIA_TYPES[syntax]
        raise RenderError(f"frame {frame} is missing from the encapsulated pixel data")
    if syntax not in _UNCOMPRESSED or syntax == "1.2.840.10008.1.2.2":
        return decoded_frame(path, frame, max_pixels), "application/octet-stream"
    size = (
        int(ds.Rows)
        * int(ds.Columns)
        * int(ds.get("SamplesPerPixel", 1))
        * (int(ds.BitsAllocated) // 8)
    )
    data = bytes(ds.PixelData[(frame - 1) * size : frame * size])
    return data, "application/octet-stream"


def decoded_frame(path: Path, frame: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """Return frame ``frame`` decoded to raw little-endian pixels (for clients that asked so)."""
    ds = dcmread(path, stop_before_pixels=True)
    _check_frame_header(ds, frame)
    check_pixel_budget(path, ds, frame, max_pixels)
    array = pixel_array(str(path), index=frame - 1, raw=True)
    return bytes(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def _check_frame_header(ds: Dataset, frame: int) -> None:
    total = number_of_frames(ds)
    if "Rows" not in ds or not 1 <= frame <= total:
        raise RenderError(f"frame {frame} does not exist (the instance has {total})")


def check_pixel_budget(path: Path, ds: Dataset, frame: int, max_pixels: int) -> None:
    """Refuse, before anything is decoded, a frame larger than ``max_pixels``: by the header's
    rows x columns x samples and, for JPEG, JPEG-LS and JPEG 2000, by the size the compressed
    frame itself declares (a decoder follows the bitstream, not the header)."""
    try:
        declared = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        raise RenderError("the instance has no usable rows and columns") from None
    _within(declared, max_pixels)
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if syntax not in FRAME_MEDIA_TYPES or syntax == "1.2.840.10008.1.2.5":
        return  # uncompressed or RLE: the decoder makes exactly what the header says
    full = dcmread(path)
    try:
        data = get_frame(full.PixelData, frame - 1, number_of_frames=number_of_frames(full))
    except (ValueError, IndexError, KeyError) as exc:
        raise RenderError(f"frame {frame} cannot be found in the pixel data: {exc}") from None
    size = codestream_size(data)
    if size is not None:
        _within(size[0] * size[1] * int(ds.get("SamplesPerPixel", 1) or 1), max_pixels)


def _within(pixels: int, max_pixels: int) -> None:
    if pixels > max_pixels:
        raise ImageTooLarge(
            f"the image has {pixels:,} pixels per frame, more than the {max_pixels:,} the hub "
            "renders; retrieve the instance itself to view it with a workstation"
        )


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}


def codestream_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a JPEG, JPEG-LS or JPEG 2000 frame declares, read from its header only;
    None when the bitstream is of another kind or its header cannot be found."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    start = data.find(b"\xff\x4f\xff\x51", 0, 4096)  # J2K SOC + SIZ (also inside a JP2 box)
    if start >= 0 and len(data) >= start + 28:
        x, y, x0, y0 = (
            int.from_bytes(data[start + i : start + i + 4], "big") for i in (8, 12, 16, 20)
        )
        return max(0, x - x0), max(0, y - y0)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


# -- rendered previews -----------------------------------------------------------------------


def render(
    path: Path,
    frame: int = 1,
    window: Window | None = None,
    media_type: str = "image/png",
    quality: int = 90,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """Return frame ``frame`` of the instance at ``path`` as a PNG or JPEG preview."""
    from PIL import Image

    ds = dcmread(path, stop_before_pixels=True)
    _check_frame_header(ds, frame)
    check_pixel_budget(path, ds, frame, max_pixels)
    try:
        pixels = pixel_array(str(path), index=frame - 1)
    except Exception as exc:  # a missing decoder or damaged bitstream
        raise RenderError(
            f"cannot decode the pixel data ({ds.file_meta.TransferSyntaxUID.name}): {exc}"
        ) from None
    image = Image.fromarray(to_display(ds, pixels, window))
    out = BytesIO()
    if media_type == "image/jpeg":
        image.convert("RGB" if image.mode == "RGB" else "L").save(out, "JPEG", quality=quality)
    else:
        image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def to_display(ds: Dataset, pixels: np.ndarray, window: Window | None) -> np.ndarray:
    """Map one frame of stored values to 8-bit display values (grey or RGB)."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if not photometric.startswith("MONOCHROME"):
        return _color_to_uint8(ds, pixels)
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if window is not None:
        display = apply_window(values, window)
    elif "VOILUTSequence" in ds:
        display = _stretch(np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64))
    elif _dataset_window(ds) is not None:
        display = apply_window(values, _dataset_window(ds))  # type: ignore[arg-type]
    else:
        display = _stretch(values)
    if photometric == "MONOCHROME1":
        display = 1.0 - display
    return np.asarray(np.rint(display * 255.0), dtype=np.uint8)


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Window ``values`` (modality units) to 0..1 per PS3.3 C.11.2.1.2."""
    c, w = window.center, window.width
    if window.function == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-4.0 * (values - c) / w)))
    if window.function == "linear_exact":
        return np.clip((values - (c - w / 2.0)) / w, 0.0, 1.0)
    return np.clip(((values - (c - 0.5)) / (w - 1.0)) + 0.5, 0.0, 1.0)


def _dataset_window(ds: Dataset) -> Window | None:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        c, w = _first_number(center), _first_number(width)
    except (TypeError, ValueError):
        return None
    return Window(c, w) if w > 1 else None


def _first_number(value: Any) -> float:
    """The first of a multi-valued DS/IS (several windows may be given), else the value."""
    if isinstance(value, (int, float, str)):
        return float(value)
    return float(value[0])


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def _color_to_uint8(ds: Dataset, pixels: np.ndarray) -> np.ndarray:
    """RGB (pydicom already converted YBR) to 8 bits per sample."""
    bits = int(ds.get("BitsStored", 8) or 8)
    if bits > 8:
        pixels = pixels >> (bits - 8)
    return np.asarray(pixels, dtype=np.uint8)


def encapsulated_document(path: Path) -> tuple[bytes, str]:
    """The document an Encapsulated PDF (or other encapsulated document) instance carries, and its
    media type; RenderError when the instance holds none."""
    ds = dcmread(path)
    data = ds.get("EncapsulatedDocument")
    if not data:
        raise RenderError("the instance holds no encapsulated document")
    length = ds.get("EncapsulatedDocumentLength")
    if isinstance(length, int) and 0 < length <= len(data):
        data = data[:length]  # without the pad byte DICOM adds to an odd length
    mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "application/pdf")
    return bytes(data), mime
