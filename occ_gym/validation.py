"""Checking arguments, once: positive counts, finite numbers, and typed configs built from the
JSON-style keyword arguments environments take. Each check raises with the argument's name."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np


def positive_int(name: str, value: Any, error: type[Exception] = ValueError) -> int:
    """``value`` if it is an int >= 1 (not a bool), else ``error`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise error(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def finite_number(name: str, value: Any, *, minimum: float) -> float:
    """``value`` as a float if it is a finite number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be finite and >= {minimum}, got {value!r}")
    return float(value)


def build_dataclass(cls: type, values: Mapping[str, Any], what: str) -> Any:
    """``cls(**values)``, with an error that names ``what`` and the unknown keys."""
    if not isinstance(values, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    return cls(**values)
