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
from pydicom.encaps import generate_frames
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


class RenderError(ValueError):
    """The instance cannot be rendered as asked (no pixels, no such frame, a bad window)."""


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


def stored_frame(path: Path, frame: int) -> tuple[bytes, str]:
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
        return decoded_frame(path, frame), "application/octet-stream"
    size = (
        int(ds.Rows)
        * int(ds.Columns)
        * int(ds.get("SamplesPerPixel", 1))
        * (int(ds.BitsAllocated) // 8)
    )
    data = bytes(ds.PixelData[(frame - 1) * size : frame * size])
    return data, "application/octet-stream"


def decoded_frame(path: Path, frame: int) -> bytes:
    """Return frame ``frame`` decoded to raw little-endian pixels (for clients that asked so)."""
    ds = dcmread(path, stop_before_pixels=True)
    _check_frame_header(ds, frame)
    array = pixel_array(str(path), index=frame - 1, raw=True)
    return bytes(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def _check_frame_header(ds: Dataset, frame: int) -> None:
    total = number_of_frames(ds)
    if "Rows" not in ds or not 1 <= frame <= total:
        raise RenderError(f"frame {frame} does not exist (the instance has {total})")


# -- rendered previews -----------------------------------------------------------------------


def render(
    path: Path,
    frame: int = 1,
    window: Window | None = None,
    media_type: str = "image/png",
    quality: int = 90,
) -> bytes:
    """Return frame ``frame`` of the instance at ``path`` as a PNG or JPEG preview."""
    from PIL import Image

    ds = dcmread(path, stop_before_pixels=True)
    _check_frame_header(ds, frame)
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
