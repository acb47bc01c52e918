import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.multipart import MultipartError, build_related, parse_related


@given(st.lists(st.binary(max_size=300), max_size=5))
def test_what_is_built_parses_back_to_the_same_parts(parts: list[bytes]) -> None:
    body, content_type = build_related(parts)
    boundary = content_type.split("boundary=")[1]
    assert [content for _, content in parse_related(body, boundary)] == parts


@pytest.mark.parametrize(
    "body", [b"", b"no boundary here", b"--b\r\nContent-Type: x\r\n\r\nunterminated"]
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MultipartError):
        parse_related(body, "b")
