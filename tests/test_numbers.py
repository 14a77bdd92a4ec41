"""Numbers <-> ENUM names for every apex form, and the numbering plan (property and table tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enumserver.numbers import (
    NumberError,
    apex_digits,
    default_lengths,
    from_name,
    kind_of,
    normalise,
    to_name,
)

APEXES = ["8.5.3.e164.arpa.", "8.5.3.ie164.arpa.", "i.8.5.3.e164.arpa.", "8.5.3.e164enum.net."]


@given(st.text(alphabet="0123456789", min_size=1, max_size=12), st.sampled_from(APEXES))
def test_number_name_round_trip(nsn: str, apex: str) -> None:
    digits = "358" + nsn
    assert from_name(to_name(digits, apex), apex) == digits


def test_name_of_the_domain_example() -> None:
    assert to_name("358401234567", "8.5.3.e164.arpa.") == "7.6.5.4.3.2.1.0.4.8.5.3.e164.arpa."
    assert to_name("358401234567", "i.8.5.3.e164.arpa.") == "7.6.5.4.3.2.1.0.4.i.8.5.3.e164.arpa."


def test_apex_digits_skip_branch_labels() -> None:
    assert apex_digits("i.8.5.3.e164.arpa.") == "358"
    assert apex_digits("i.5.3.e164.arpa.") == "35"  # the misplaced branch label of old proxies
    assert apex_digits("e164.arpa.") == ""


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("+358 40 123 4567", "358401234567"),
        ("040-1234567", "358401234567"),
        ("00358401234567", "358401234567"),
        ("0800 123 4567", "3588001234567"),
    ],
)
def test_normalise_national_and_international_forms(text: str, digits: str) -> None:
    assert normalise(text) == digits


@pytest.mark.parametrize("text", ["+358 40 abc", "", "+1234567890123456", "++358"])
def test_normalise_refuses_non_numbers(text: str) -> None:
    with pytest.raises(NumberError):
        normalise(text)


def test_from_name_refuses_non_digit_labels() -> None:
    with pytest.raises(NumberError):
        from_name("_sip.7.6.5.8.5.3.e164.arpa.", "8.5.3.e164.arpa.")


@pytest.mark.parametrize(
    ("digits", "kind"),
    [
        ("358401234567", "mobile"),
        ("3584571234567", "mobile"),
        ("358501234567", "mobile"),
        ("35891234567", "geographic"),
        ("3585123456", "geographic"),
        ("3588001234567", "free"),
        ("3586001234567", "premium-errands"),
        ("3587001234567", "premium-entertainment"),
        ("358101234567", "business"),
        ("358291234567", "business"),
        ("4412345", "unknown"),
    ],
)
def test_kind_of_finnish_numbers(digits: str, kind: str) -> None:
    assert kind_of(digits) == kind


def test_default_lengths_follow_the_plan() -> None:
    assert default_lengths("35840") == (10, 13)
    assert default_lengths("3581") == (8, 15)  # no plan block: the general 5..12 digit NSN
