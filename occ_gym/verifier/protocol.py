"""What host and sandbox say to each other, and the modules a candidate may import.

Standard library only: this file is also mounted into the sandbox and imported by the fork
server there, so the host and the sandbox share one definition of the wire format.

Values cross the boundary as JSON with tags for the Python types JSON lacks (tuple, set,
frozenset, dict with non-string keys, bytes, complex), so the host can compare a candidate's
output with Python's ``==`` exactly as an ``assert candidate(x) == y`` would, without ever
unpickling anything the sandbox produced.
"""

from __future__ import annotations

import json
import math
from typing import Any

# The modules candidates may import. The fork server imports them before it forks, so a child
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

_TAG = "__occ__"


class WireError(ValueError):
    """A value that cannot cross the boundary, or a message that does not parse."""


def encode_value(value: Any, depth: int = 0) -> Any:
    """Turn ``value`` into plain JSON data, tagging the types JSON cannot tell apart."""
    if depth > MAX_NESTING:
        raise WireError(f"value nested deeper than {MAX_NESTING}")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    # Subclasses are read through the base type's own methods, so an overridden __eq__,
    # __repr__ or __iter__ cannot change what the host receives.
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else {_TAG: "float", "v": repr(number)}
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
        return {_TAG: "complex", "v": [value.real, value.imag]}
    raise WireError(f"cannot send a value of type {kind.__name__}")


def decode_value(data: Any, depth: int = 0) -> Any:
    """Inverse of :func:`encode_value`; builds only built-in types."""
    if depth > MAX_NESTING:
        raise WireError(f"value nested deeper than {MAX_NESTING}")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode_value(item, depth + 1) for item in data]
    if not isinstance(data, dict) or set(data) != {_TAG, "v"}:
        raise WireError(f"malformed value: {str(data)[:80]}")
    tag, inner = data[_TAG], data["v"]
    try:
        if tag == "float":
            return float(inner)
        if tag == "bytes":
            return bytes.fromhex(inner)
        if tag == "complex":
            return complex(float(inner[0]), float(inner[1]))
        items = [decode_value(item, depth + 1) for item in inner]
        if tag == "tuple":
            return tuple(items)
        if tag == "set":
            return set(items)
        if tag == "frozenset":
            return frozenset(items)
        if tag == "dict":
            return dict(items)
    except (TypeError, ValueError) as error:
        raise WireError(f"malformed {tag} value: {error}") from None
    raise WireError(f"unknown value tag {tag!r}")


def dumps(message: dict[str, Any]) -> bytes:
    """One message as a JSON line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def loads(line: bytes) -> dict[str, Any]:
    """Parse one JSON line into a message (a dict), or raise :class:`WireError`."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise WireError(f"malformed message: {error}") from None
    if not isinstance(message, dict):
        raise WireError("malformed message: not an object")
    return message
