from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from shared.accession import is_valid_accession_number, make_accession_number


@given(st.text(max_size=20), st.dates())
def test_accession_numbers_fit_dicom_sh_and_are_valid(prefix: str, day: date) -> None:
    value = make_accession_number(prefix, day)
    assert len(value) <= 16 and is_valid_accession_number(value)


def test_accession_numbers_rarely_repeat() -> None:
    """34**6 numbers a prefix and day: 2000 of them repeat once in ~750 runs, three times never.

    (The stores retry a repeat against their unique column; this guards the randomness itself.)
    """
    values = {make_accession_number("PHC-1", date(2026, 1, 5)) for _ in range(2000)}
    assert len(values) >= 1998


def test_what_a_modality_console_cannot_take_is_invalid() -> None:
    assert not is_valid_accession_number("A" * 17)
    assert not is_valid_accession_number("has space")
