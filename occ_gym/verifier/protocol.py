"""What host and sandbox say to each other, and the modules a candidate may import.

Standard library only: this file is also mounted into the sandbox and imported there, so the
host and the sandbox share one definition of the wire format.

Values cross the boundary as JSON with tags for the Python types JSON lacks (tuple, set,
frozenset, dict with non-string keys, bytes, complex, non-finite floats, ints beyond 2**53,
and the standard library's Fraction, Decimal, deque and UserList),
so the host can compare a candidate's output with Python's ``==`` exactly as an
``assert candidate(x) == y`` would, without ever unpickling anything the sandbox produced.

Decoding is the host's defence against crafted values: it builds only built-in types, refuses
anything malformed with :class:`WireError` (never another exception), keeps big ints exact, and
refuses sets and dicts whose items share one hash value more than ``MAX_SAME_HASH`` times, so
that building them costs time linear in their size (no hash flooding).
"""

from __future__ import annotations

import collections
import decimal
import fractions
import json
import math
from typing import Any

# The modules candidates may import. The sandbox imports them before it forks, so a child
# pays nothing for them; the AST screen rejects any other import.
ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        "array",
        "bisect",
        "collections",
        "copy",
        "dataclasses",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "hashlib",
        "heapq",
        "itertools",
        "math",
        "operator",
        "random",
        "re",
        "statistics",
        "string",
        "threading",
        "time",
        "typing",
    }
)

MAX_NESTING = 64  # deeper values are refused, on both sides
MAX_SAME_HASH = 8
"""The most items of one set or dict (or keys) that may share a hash value."""
JSON_INT_BITS = 53
"""Ints up to this many bits travel as JSON numbers; larger ones as tagged hex, exactly."""

_TAG = "__occ__"


class WireError(ValueError):
    """A value that cannot cross the boundary, or a message that does not parse."""


class UncomparableValue(WireError):
    """A well-formed value the host will not build: a hash-flooded or unhashable set or dict."""


def encode_value(value: Any, depth: int = 0) -> Any:
    """Turn ``value`` into plain JSON data, tagging the types JSON cannot tell apart."""
    if depth > MAX_NESTING:
        raise WireError(f"value nested deeper than {MAX_NESTING}")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    # Subclasses are read through the base type's own methods, so an overridden __eq__,
    # __repr__, __iter__ or property cannot change what the host receives.
    if isinstance(value, int):
        number = int.__index__(value)
        if number.bit_length() <= JSON_INT_BITS:
            return number
        return {_TAG: "int", "v": int.__format__(number, "x")}
    if isinstance(value, float):
        return _encode_float(float.__float__(value))
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list):
        return [encode_value(item, depth + 1) for item in list.__iter__(value)]
    if isinstance(value, tuple):
        return {
            _TAG: "tuple",
            "v": [encode_value(item, depth + 1) for item in tuple.__iter__(value)],
        }
    if isinstance(value, (set, frozenset)):
        items = [encode_value(item, depth + 1) for item in frozenset(value)]
        return {_TAG: "frozenset" if isinstance(value, frozenset) else "set", "v": items}
    if isinstance(value, dict):
        pairs = [
            [encode_value(k, depth + 1), encode_value(v, depth + 1)] for k, v in dict.items(value)
        ]
        return {_TAG: "dict", "v": pairs}
    if isinstance(value, (bytes, bytearray)):
        return {_TAG: "bytes", "v": bytes(value).hex()}
    if isinstance(value, complex):
        parts = (_COMPLEX_REAL.__get__(value), _COMPLEX_IMAG.__get__(value))
        return {_TAG: "complex", "v": [_encode_float(part) for part in parts]}
    if isinstance(value, fractions.Fraction):
        parts = (_FRACTION_NUMERATOR(value), _FRACTION_DENOMINATOR(value))
        return {_TAG: "fraction", "v": [encode_value(int(part), depth + 1) for part in parts]}
    if isinstance(value, decimal.Decimal):
        return {_TAG: "decimal", "v": decimal.Decimal.__str__(value)}
    if isinstance(value, collections.deque):
        items = [encode_value(item, depth + 1) for item in collections.deque.__iter__(value)]
        return {_TAG: "deque", "v": items}
    if isinstance(value, collections.UserList):
        return {_TAG: "userlist", "v": encode_value(list(value.data), depth + 1)}
    raise WireError(f"cannot send a value of type {kind.__name__}")


_COMPLEX_REAL = complex.__dict__["real"]
_COMPLEX_IMAG = complex.__dict__["imag"]
_FRACTION_NUMERATOR = fractions.Fraction.numerator.fget  # type: ignore[attr-defined]
_FRACTION_DENOMINATOR = fractions.Fraction.denominator.fget  # type: ignore[attr-defined]


def _encode_float(number: float) -> Any:
    return number if math.isfinite(number) else {_TAG: "float", "v": repr(number)}


def decode_value(data: Any, depth: int = 0) -> Any:
    """Inverse of :func:`encode_value`; builds only built-in types, or raises WireError."""
    try:
        return _decode(data, depth)
    except WireError:
        raise
    except Exception as error:  # anything a crafted value can provoke
        raise WireError(f"malformed value ({type(error).__name__})") from None


def _decode(data: Any, depth: int) -> Any:
    if depth > MAX_NESTING:
        raise WireError(f"value nested deeper than {MAX_NESTING}")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [_decode(item, depth + 1) for item in data]
    if not isinstance(data, dict) or len(data) != 2 or _TAG not in data or "v" not in data:
        raise WireError(f"malformed value: {str(data)[:80]}")
    tag, inner = data[_TAG], data["v"]
    if tag == "int":
        return _decode_int(inner)
    if tag == "float":
        if inner not in ("nan", "inf", "-inf"):
            raise WireError(f"malformed float value {str(inner)[:20]!r}")
        return float(inner)
    if tag == "bytes":
        if not isinstance(inner, str):
            raise WireError("malformed bytes value")
        return bytes.fromhex(inner)
    if tag == "complex":
        if not isinstance(inner, list) or len(inner) != 2:
            raise WireError("malformed complex value")
        real, imag = (_decode(part, depth + 1) for part in inner)
        if not (isinstance(real, float) or type(real) is int) or not (
            isinstance(imag, float) or type(imag) is int
        ):
            raise WireError("malformed complex value")
        return complex(float(real), float(imag))
    if tag == "decimal":
        if not isinstance(inner, str) or len(inner) > (1 << 20):
            raise WireError("malformed decimal value")
        return decimal.Decimal(inner)
    if not isinstance(inner, list):
        raise WireError(f"malformed {str(tag)[:20]} value")
    if tag == "fraction":
        numerator, denominator = (_decode(part, depth + 1) for part in _pair(inner))
        if type(numerator) is not int or type(denominator) is not int or denominator < 1:
            raise WireError("malformed fraction value")
        return fractions.Fraction(numerator, denominator)
    if tag == "deque":
        return collections.deque(_decode(item, depth + 1) for item in inner)
    if tag == "userlist":
        return collections.UserList(_decode(inner, depth + 1))
    if tag == "tuple":
        return tuple(_decode(item, depth + 1) for item in inner)
    if tag in ("set", "frozenset"):
        items = [_decode(item, depth + 1) for item in inner]
        _refuse_hash_flood(items)
        return set(items) if tag == "set" else frozenset(items)
    if tag == "dict":
        pairs = []
        for pair in inner:
            if not isinstance(pair, list) or len(pair) != 2:
                raise WireError("malformed dict value")
            pairs.append((_decode(pair[0], depth + 1), _decode(pair[1], depth + 1)))
        _refuse_hash_flood([key for key, _ in pairs])
        return dict(pairs)
    raise WireError(f"unknown value tag {str(tag)[:20]!r}")


def _pair(inner: list[Any]) -> list[Any]:
    if len(inner) != 2:
        raise WireError("malformed value: expected two parts")
    return inner


def _decode_int(inner: Any) -> int:
    if not isinstance(inner, str) or not 0 < len(inner) <= (1 << 24):
        raise WireError("malformed int value")
    digits = inner[1:] if inner.startswith("-") else inner
    if not digits or digits.strip("0123456789abcdef"):
        raise WireError("malformed int value")
    return int(inner, 16)  # linear in the digits (a power-of-two base)


def _refuse_hash_flood(items: list[Any]) -> None:
    """Refuse items that would make a set or dict quadratic to build (or are unhashable)."""
    counts: dict[int, int] = {}
    for item in items:
        try:
            key = hash(item)
        except TypeError:
            raise UncomparableValue(f"unhashable {type(item).__name__} in a set or dict") from None
        count = counts.get(key, 0) + 1
        if count > MAX_SAME_HASH:
            message = f"more than {MAX_SAME_HASH} set or dict items share one hash value"
            raise UncomparableValue(message)
        counts[key] = count


def dumps(message: dict[str, Any]) -> bytes:
    """One message as a JSON line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def loads(line: bytes) -> dict[str, Any]:
    """Parse one JSON line into a message (a dict), or raise :class:`WireError`."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError, MemoryError) as error:
        raise WireError(f"malformed message: {type(error).__name__}") from None
    if not isinstance(message, dict):
        raise WireError("malformed message: not an object")
    return message
