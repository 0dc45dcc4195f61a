"""The canonical byte form the chain hashes: RFC 8785 rules, and the fast
path agreeing with the reference writer."""

from __future__ import annotations

import pytest

from services.audit.canonical import (
    NotCanonicalisable,
    canonical_bytes,
    canonical_text,
    format_number,
    reference_text,
)


@pytest.mark.parametrize(
    ("number", "written"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (-0.0, "0"),
        (5e-324, "5e-324"),
        (333333333.3333333, "333333333.3333333"),
    ],
)
def test_numbers_are_written_as_ecmascript_does(number: float, written: str) -> None:
    """Doubles follow ECMAScript's Number.prototype.toString."""
    assert format_number(number) == written


def test_members_sorted_by_utf16_and_strings_minimally_escaped() -> None:
    """Keys sort by UTF-16 code units; only quote, backslash and controls escape."""
    value = {
        "b": 1,
        "a": [True, None, 'x\n\u0001é"\u2028'],
        "\u20ac": 1,
        "\U0001f600": 2,
        "\ufb33": 3,
    }
    assert canonical_text(value) == (
        '{"a":[true,null,"x\\n\\u0001\u00e9\\"\u2028"],"b":1,"\u20ac":1,"\U0001f600":2,"\ufb33":3}'
    )
    assert canonical_bytes({"é": "é"}) == b'{"\xc3\xa9":"\xc3\xa9"}'


@pytest.mark.parametrize(
    "value",
    [
        {"z": {"y": [1, 2, {"x": "\t"}]}, "a": ""},
        {"n": 10**30, "f": 2.5, "s": "plain"},
        {"k": "ünïcödé", "\u00e9": 1, "e": 2},
        [None, False, "\u007f", "\x1f"],
    ],
)
def test_fast_path_matches_the_reference_writer(value: object) -> None:
    """Whichever path writes it, the canonical text is the same."""
    assert canonical_text(value) == reference_text(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"s": "\ud800"}])
def test_values_without_a_canonical_form_are_refused(value: object) -> None:
    """NaN, infinity and lone surrogates have no canonical bytes."""
    with pytest.raises(NotCanonicalisable):
        canonical_bytes(value)
