"""Building typed configs from the JSON-style keyword arguments environments take."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any


def build_dataclass(cls: type, values: Mapping[str, Any], what: str) -> Any:
    """``cls(**values)``, with an error that names ``what`` and the unknown keys."""
    if not isinstance(values, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    return cls(**values)
