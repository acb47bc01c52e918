"""DIMSE command sets and P-DATA-TF framing for the bridge's store path (DICOM PS3.7 and PS3.8).

A command set is a handful of group 0000 elements, always in Implicit VR Little Endian. The bridge
reads and writes them by hand because they are on the path of every instance: pydicom's general
reader costs more than the whole rest of a C-STORE. Association PDUs (rarer, more varied) are left
to pynetdicom's classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

# Command Field values (PS3.7 E.1).
C_STORE_RQ = 0x0001
C_FIND_RQ = 0x0020
C_ECHO_RQ = 0x0030
C_CANCEL_RQ = 0x0FFF
RESPONSE_BIT = 0x8000

NO_DATASET = 0x0101  # Command Data Set Type: no data set follows

# Status codes the bridge answers with (PS3.7 Annex C).
SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC210
PROCESSING_FAILURE = 0xC211
UNABLE_TO_PROCESS = 0xC000
SOP_CLASS_NOT_SUPPORTED = 0x0122
UNRECOGNISED_OPERATION = 0x0211

# Elements of group 0000 by element number, and how their values read.
AFFECTED_SOP_CLASS_UID = 0x0002
COMMAND_FIELD = 0x0100
MESSAGE_ID = 0x0110
MESSAGE_ID_BEING_RESPONDED_TO = 0x0120
COMMAND_DATASET_TYPE = 0x0800
STATUS = 0x0900
AFFECTED_SOP_INSTANCE_UID = 0x1000

_US = {
    COMMAND_FIELD,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    COMMAND_DATASET_TYPE,
    STATUS,
    0x0700,
    0x1031,
}  # Priority, Move Originator Message ID
_UI = {AFFECTED_SOP_CLASS_UID, AFFECTED_SOP_INSTANCE_UID, 0x0003, 0x1001}

_HEADER = struct.Struct("<HHI")  # group, element, value length (Implicit VR)
_PDV_HEADER = struct.Struct(">IBB")  # item length, presentation context ID, message control header


class CommandError(ValueError):
    """A command set that cannot be read."""


class Command(dict[int, Any]):
    """A decoded command set: ``{element number: value}`` for group 0000."""

    @property
    def field(self) -> int:
        return int(self.get(COMMAND_FIELD, 0))

    @property
    def message_id(self) -> int:
        return int(self.get(MESSAGE_ID, 0))

    @property
    def responding_to(self) -> int:
        """Message ID Being Responded To: the request a C-CANCEL (or a response) is about."""
        return int(self.get(MESSAGE_ID_BEING_RESPONDED_TO, 0))

    @property
    def has_dataset(self) -> bool:
        return int(self.get(COMMAND_DATASET_TYPE, NO_DATASET)) != NO_DATASET

    @property
    def sop_class_uid(self) -> str:
        return str(self.get(AFFECTED_SOP_CLASS_UID, ""))

    @property
    def sop_instance_uid(self) -> str:
        return str(self.get(AFFECTED_SOP_INSTANCE_UID, ""))


def decode_command(data: bytes) -> Command:
    """Read an Implicit VR Little Endian command set (group 0000 only)."""
    command = Command()
    view = memoryview(data)
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < _HEADER.size:
            raise CommandError("truncated element header")
        group, element, length = _HEADER.unpack_from(view, offset)
        offset += _HEADER.size
        if group != 0x0000:
            raise CommandError(f"element ({group:04X},{element:04X}) outside the command group")
        if length > end - offset:
            raise CommandError(f"element (0000,{element:04X}) runs past the end of the command")
        value = bytes(view[offset : offset + length])
        offset += length
        if element in _US and length == 2:
            command[element] = int.from_bytes(value, "little")
        elif element in _UI:
            command[element] = value.rstrip(b"\x00 ").decode("ascii", "replace")
        elif element != 0x0000:
            command[element] = value
    if COMMAND_FIELD not in command:
        raise CommandError("no Command Field")
    return command


def _element(element: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00"
    return _HEADER.pack(0x0000, element, len(value)) + value


def _us(value: int) -> bytes:
    return value.to_bytes(2, "little")


def encode_response(
    request: Command, status: int, *, dataset: bool = False, with_instance: bool = False
) -> bytes:
    """Encode the response to ``request`` with ``status`` (its Command Field with the response
    bit)."""
    elements = []
    if request.sop_class_uid:
        elements.append(_element(AFFECTED_SOP_CLASS_UID, request.sop_class_uid.encode("ascii")))
    elements += [
        _element(COMMAND_FIELD, _us(request.field | RESPONSE_BIT)),
        _element(MESSAGE_ID_BEING_RESPONDED_TO, _us(request.message_id)),
        _element(COMMAND_DATASET_TYPE, _us(0x0000 if dataset else NO_DATASET)),
        _element(STATUS, _us(status)),
    ]
    if with_instance and request.sop_instance_uid:
        elements.append(
            _element(AFFECTED_SOP_INSTANCE_UID, request.sop_instance_uid.encode("ascii"))
        )
    body = b"".join(elements)
    return _element(0x0000, len(body).to_bytes(4, "little")) + body


def p_data_tf(context_id: int, data: bytes, command: bool, max_pdu: int) -> Iterator[bytes]:
    """Frame ``data`` as P-DATA-TF PDUs of at most ``max_pdu`` bytes each (0: no limit)."""
    room = len(data) if max_pdu <= 0 else max(max_pdu - _PDV_HEADER.size, 1)
    view = memoryview(data)
    offset = 0
    while True:
        fragment = view[offset : offset + room]
        offset += len(fragment)
        last = offset >= len(data)
        control = (0x01 if command else 0x00) | (0x02 if last else 0x00)
        item = _PDV_HEADER.pack(len(fragment) + 2, context_id, control) + fragment
        yield b"\x04\x00" + len(item).to_bytes(4, "big") + item
        if last:
            return


def pdv_header(data: bytes) -> tuple[int, int, bool, bool]:
    """Read a PDV item header: (fragment length, context ID, is command, is last fragment)."""
    length, context_id, control = _PDV_HEADER.unpack(data)
    if length < 2:
        raise CommandError(f"presentation data value item of length {length}")
    return length - 2, context_id, bool(control & 0x01), bool(control & 0x02)


PDV_HEADER_SIZE = _PDV_HEADER.size
