"""A quick look at the first bytes of a DICOM data set, for the checks made on every instance the
bridge receives: is it a data set at all, which SOPInstanceUID and AccessionNumber does it carry.

Only little endian, not deflated, is read (what modalities send); an undefined length, or the end
of the bytes at hand, stops the walk and the answer is "cannot tell", left to pydicom or the hub.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

IMPLICIT_LE = "1.2.840.10008.1.2"
_NOT_READ = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}  # deflated, big endian
# Explicit VRs whose length takes 4 bytes after 2 reserved ones (PS3.5 7.1.2).
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_TAG = struct.Struct("<HH")
SOP_INSTANCE_UID = 0x00080018
ACCESSION_NUMBER = 0x00080050


class NotADataSet(ValueError):
    """The bytes break the data set encoding (elements out of order, no VR, past the end)."""


def readable(transfer_syntax: str) -> bool:
    """Whether ``walk`` can read data sets in ``transfer_syntax`` (little endian, not deflated)."""
    return transfer_syntax.startswith(IMPLICIT_LE) and transfer_syntax not in _NOT_READ


def walk(
    data: bytes | bytearray | memoryview, offset: int, explicit: bool, total: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """``(tag, value)`` of the elements from ``offset`` while ``data`` holds them whole.

    ``total``: the data set's full length when known (``data`` may be its first part only); an
    element running past it, like one out of order or without a VR, raises NotADataSet.
    """
    previous = -1
    end = len(data)
    while offset + 8 <= end:
        group, element = _TAG.unpack_from(data, offset)
        tag = (group << 16) | element
        if tag <= previous:
            raise NotADataSet(f"element ({group:04X},{element:04X}) out of order")
        previous = tag
        if explicit:
            vr = bytes(data[offset + 4 : offset + 6])
            if not (vr.isalpha() and vr.isupper()):
                raise NotADataSet(
                    f"element ({group:04X},{element:04X}) has no value representation"
                )
            if vr in _LONG_VRS:
                if offset + 12 > end:
                    return
                length, header = int.from_bytes(data[offset + 8 : offset + 12], "little"), 12
            else:
                length, header = int.from_bytes(data[offset + 6 : offset + 8], "little"), 8
        else:
            length, header = int.from_bytes(data[offset + 4 : offset + 8], "little"), 8
        if length == 0xFFFFFFFF:
            return
        if total is not None and offset + header + length > total:
            raise NotADataSet(
                f"element ({group:04X},{element:04X}) runs past the end of the data set"
            )
        if offset + header + length > end:
            return
        yield tag, bytes(data[offset + header : offset + header + length])
        offset += header + length


def text(value: bytes) -> str | None:
    """An ASCII string value without its padding; None if it is not ASCII (leave it to pydicom)."""
    return value.decode("ascii").rstrip("\x00").strip() if value.isascii() else None


def part10_syntax(head: bytes) -> tuple[str, int] | None:
    """(transfer syntax, offset of the data set) of a Part 10 file's first bytes, None if unsure."""
    if head[128:132] != b"DICM" or head[132:138] != b"\x02\x00\x00\x00UL":
        return None
    start = 144 + int.from_bytes(head[140:144], "little")
    try:
        for tag, value in walk(head[:start], 144, explicit=True):
            if tag == 0x00020010:
                return value.rstrip(b"\x00 ").decode("ascii", "replace"), start
    except NotADataSet:
        return None
    return None


def dataset_problem(
    head: bytes | bytearray, total: int, transfer_syntax: str, sop_instance_uid: str
) -> str | None:
    """What is surely wrong with a received data set, judged by its first bytes ``head`` (of
    ``total``); None when nothing is, or nothing can be told (the hub reads it whole later)."""
    if not readable(transfer_syntax):
        return None
    try:
        for tag, value in walk(head, 0, explicit=transfer_syntax != IMPLICIT_LE, total=total):
            if tag == SOP_INSTANCE_UID:
                found = text(value)
                if found is not None and found != sop_instance_uid:
                    return f"its SOPInstanceUID {found} is not the one in the request"
                return None
            if tag > SOP_INSTANCE_UID:
                return "the data set has no SOPInstanceUID"
    except NotADataSet as exc:
        return f"not a DICOM data set: {exc}"
    return None
