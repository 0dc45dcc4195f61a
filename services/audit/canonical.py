"""The canonical byte form of a JSON value, which the hash chain and the
checkpoint signatures are computed over.

It follows RFC 8785 (JSON Canonicalization Scheme) and is written out in
``docs/audit-log-format.md``: object members sorted by the UTF-16 code units
of their names, no whitespace, strings as UTF-8 with only ``"``, ``\\`` and
the control characters U+0000..U+001F escaped, numbers as ECMAScript writes
them. One deliberate difference: integers are written as plain decimal digits
at any size (RFC 8785 would first turn them into IEEE doubles).
"""

from __future__ import annotations

import json
import math
from typing import Any

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


class NotCanonicalisable(ValueError):
    """The value has no canonical form (NaN, infinity, a lone surrogate...)."""


def canonical_bytes(value: Any) -> bytes:
    """The canonical UTF-8 bytes of ``value`` (dicts, lists, str, int, float,
    bool, None)."""
    text = canonical_text(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise NotCanonicalisable("string holds a lone surrogate") from None


def canonical_text(value: Any) -> str:
    """The canonical form as text.

    Fast path: with no float anywhere, ``json.dumps`` with sorted keys, no
    whitespace and ``ensure_ascii=False`` writes exactly the canonical form
    (it escapes the same characters the same way, in lower-case hex), as
    long as the text is ASCII (so that code-point order of member names is
    UTF-16 order). Anything else goes through the reference writer below.
    """
    if not _has_float(value):
        try:
            text = json.dumps(
                value,
                ensure_ascii=False,
                sort_keys=True,
                separators=(",", ":"),
                allow_nan=False,
            )
        except (TypeError, ValueError):
            text = None
        if text is not None and text.isascii():
            return text
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def reference_text(value: Any) -> str:
    """The canonical form by the reference writer alone (for tests)."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _has_float(value: Any) -> bool:
    """True if a float is anywhere in ``value`` (walked without recursion,
    exact types first: this runs for every entry)."""
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if kind is dict:
            push(item.values())
        elif kind is list or kind is tuple:
            push(item)
        elif isinstance(item, float):
            return True
        elif isinstance(item, dict):
            push(item.values())
        elif isinstance(item, list | tuple):
            push(item)
    return False


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(format_number(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, dict):
        _write_object(value, out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise NotCanonicalisable(f"no canonical form for {type(value).__name__}")


def _write_object(value: dict[Any, Any], out: list[str]) -> None:
    for key in value:
        if not isinstance(key, str):
            raise NotCanonicalisable("object member names must be strings")
    out.append("{")
    ordered = sorted(value, key=lambda name: name.encode("utf-16-be", "surrogatepass"))
    for index, key in enumerate(ordered):
        if index:
            out.append(",")
        out.append(_string(key))
        out.append(":")
        _write(value[key], out)
    out.append("}")


def _string(text: str) -> str:
    out = ['"']
    for char in text:
        escaped = _SHORT_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def format_number(number: float) -> str:
    """A double as ECMAScript's Number.prototype.toString writes it."""
    if math.isnan(number) or math.isinf(number):
        raise NotCanonicalisable("NaN and infinity have no JSON form")
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    digits, point = _shortest_digits(abs(number))
    k, n = len(digits), point
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        exponent = n - 1
        exp_text = f"e{'+' if exponent >= 0 else '-'}{abs(exponent)}"
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = mantissa + exp_text
    return sign + body


def _shortest_digits(number: float) -> tuple[str, int]:
    """(digits, n) with value = 0.digits x 10**n and the fewest digits that
    round-trip (Python's repr finds them)."""
    text = repr(number)
    mantissa, _, exp = text.partition("e")
    exponent = int(exp) if exp else 0
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + exponent
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0") or "0", point
