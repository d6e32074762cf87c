"""The task record and the protocol every task source follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class Task:
    """One programming problem, as the environment sees it."""

    task_id: str
    prompt_features: np.ndarray
    """float32 features computed from the prompt alone, each in [0, 1]."""
    public_tests: int
    hidden_tests: int
    prompt_tokens: int
    difficulty: float | None = None
    """Latent difficulty in [0, 1] (simulated tasks only). Never part of an observation."""


@runtime_checkable
class TaskSource(Protocol):
    """A fixed, indexable set of tasks of one split."""

    split: str
    feature_names: tuple[str, ...]

    def __len__(self) -> int: ...

    def task(self, index: int) -> Task: ...
