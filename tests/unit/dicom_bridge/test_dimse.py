"""The hand-written command sets and P-DATA-TF framing agree with pynetdicom's and pydicom's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from dicom_bridge.dimse import (
    C_STORE_RQ,
    Command,
    CommandError,
    decode_command,
    encode_response,
    p_data_tf,
    pdv_header,
)
from dicom_bridge.pynetdicom_compat import P_DATA_TF, decode_dataset, encode_dataset


def _store_request() -> bytes:
    ds = Dataset()
    ds.AffectedSOPClassUID = CTImageStorage
    ds.CommandField = C_STORE_RQ
    ds.MessageID = 7
    ds.Priority = 0
    ds.CommandDataSetType = 0x0000
    ds.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.CommandGroupLength = 0
    ds.CommandGroupLength = len(encode_dataset(ds, True) or b"") - 12
    data = encode_dataset(ds, True)
    assert data is not None
    return data


def test_a_command_pydicom_encodes_is_read() -> None:
    command = decode_command(_store_request())

    assert command.field == C_STORE_RQ
    assert command.message_id == 7
    assert command.has_dataset
    assert command.sop_class_uid == CTImageStorage
    assert command.sop_instance_uid == "1.2.826.0.1.3680043.8.498.1"


def test_the_response_reads_back_with_pydicom() -> None:
    request = decode_command(_store_request())

    response = decode_dataset(encode_response(request, 0xA700, with_instance=True), True)

    assert response.CommandField == 0x8001
    assert response.MessageIDBeingRespondedTo == 7
    assert response.Status == 0xA700
    assert response.CommandDataSetType == 0x0101
    assert response.AffectedSOPClassUID == CTImageStorage
    assert response.AffectedSOPInstanceUID == "1.2.826.0.1.3680043.8.498.1"
    assert (
        response.CommandGroupLength
        == len(encode_response(request, 0xA700, with_instance=True)) - 12
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x01",
        b"\x08\x00\x10\x00\x02\x00\x00\x00AB",  # short header; outside group 0000
        b"\x00\x00\x00\x01\xff\x00\x00\x00",
        b"\x00\x00\x10\x01\x00\x00\x00\x00",
    ],  # runs past end; no field
)
def test_an_unreadable_command_is_refused(data: bytes) -> None:
    with pytest.raises(CommandError):
        decode_command(data)


@given(
    size=st.integers(0, 5000),
    max_pdu=st.sampled_from([0, 7, 16, 1000, 16384]),
    command=st.booleans(),
)
def test_framing_splits_and_pynetdicom_reassembles(size: int, max_pdu: int, command: bool) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)

    pdus = list(p_data_tf(3, data, command, max_pdu))

    pieces = []
    for i, raw in enumerate(pdus):
        assert raw[0] == 0x04
        assert max_pdu == 0 or len(raw) - 6 <= max(max_pdu, 7)
        pdu = P_DATA_TF()
        pdu.decode(raw)
        (item,) = (
            pdu.presentation_data_value_items
        )  # pynetdicom: the value starts with the control byte
        context_id, value = item.presentation_context_id, item.presentation_data_value
        length, header_context, is_command, last = pdv_header(raw[6:12])
        assert (context_id, header_context, is_command) == (3, 3, command)
        assert last == (i == len(pdus) - 1)
        assert value is not None and length == len(value) - 1
        pieces.append(value[1:])
    assert b"".join(pieces) == data


def test_an_empty_command_field_reads_as_zero() -> None:
    assert Command().field == 0
