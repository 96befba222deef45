"""Phones are checked before they are normalised and hashed: text that is not a phone is an error, never its
digits ("abc" would hash as "", "call me at 5" as "5")."""

import pytest

from indicator_exchange.stix.identifiers import (
    InvalidIdentifier,
    hmac_identifier,
    identifier_problem,
    normalise_identifier,
)

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("+44 7700 900123", "+447700900123"),
        ("+1 (555) 0100-999", "+15550100999"),
        ("030.1234.5678", "03012345678"),
        (" 123456 ", "123456"),  # six digits: the shortest kept
        ("+" + "1" * 15, "+" + "1" * 15),  # E.164's longest
    ],
)
def test_phones_keep_their_digits_and_a_leading_plus(value: str, normalised: str) -> None:
    assert identifier_problem("phone", value) is None
    assert normalise_identifier("phone", value) == normalised


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "call me at 5",
        "",
        "12345",
        "1" * 16,
        "+44 7700 900123 ext 5",
        "44+7700900123",
        "++447700900123",
        "٣٤٥٦٧٨٩",
    ],
)
def test_text_that_is_not_a_phone_is_refused_without_quoting_it(value: str) -> None:
    problem = identifier_problem("phone", value)
    assert problem is not None
    assert problem.startswith("phone: ")
    assert not value or value not in problem
    with pytest.raises(InvalidIdentifier):
        normalise_identifier("phone", value)
    with pytest.raises(InvalidIdentifier):
        hmac_identifier(KEY, "phone", value)


def test_other_types_have_no_shape_to_check() -> None:
    assert identifier_problem("device", "abc") is None
    assert normalise_identifier("email", " A@B.example ") == "a@b.example"
