"""The task record and the protocol every task source follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from occ_gym.verifier.verdict import Candidate


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
class CodeProblem(Protocol):
    """A problem a tier writes code for: the prompt it continues and the tests that judge the
    body it writes (a synthetic problem, or one from a task pack)."""

    @property
    def task_id(self) -> str: ...

    @property
    def prompt(self) -> str: ...

    @property
    def entry_point(self) -> str: ...

    def candidate(
        self, body: str, *, hidden: bool = False, cpu_s: float | None = None
    ) -> Candidate: ...


@runtime_checkable
class TaskSource(Protocol):
    """A fixed, indexable set of tasks of one split."""

    split: str
    feature_names: tuple[str, ...]

    def __len__(self) -> int: ...

    def task(self, index: int) -> Task: ...


VALIDATION_EVERY = 10
"""One ``train`` task in ``VALIDATION_EVERY`` is in ``val``: by default those of index 0, 10,
20, ...; for a source with ``validation_group(index)``, those whose group is a multiple of it,
so that ``val`` can share no program with ``fit``."""
CARVED_SPLITS = {"fit": "train", "val": "train"}
"""Splits carved from another: ``val`` for model selection, ``fit`` (the rest) to train on."""


def base_split(split: str) -> str:
    """The split whose tasks (and trace table) ``split`` draws from: itself unless carved."""
    return CARVED_SPLITS.get(split, split)


class CarvedTaskSource:
    """``val`` or ``fit`` of a ``train`` source: the same tasks (same ids, same recorded
    attempts), renumbered. ``val`` and ``fit`` are disjoint and together make ``train``."""

    def __init__(self, source: TaskSource, split: str):
        if split not in CARVED_SPLITS or source.split != CARVED_SPLITS[split]:
            raise ValueError(f"cannot carve {split!r} out of the {source.split!r} split")
        in_val = split == "val"
        group = getattr(source, "validation_group", lambda index: index)
        self.indices = [
            i for i in range(len(source)) if (group(i) % VALIDATION_EVERY == 0) == in_val
        ]
        if not self.indices:
            raise ValueError(
                f"the {source.split!r} split has {len(source)} task(s), too few to carve "
                f"{split!r} from (one task in {VALIDATION_EVERY} is val, the rest fit)"
            )
        self.source = source
        self.split = split
        self.feature_names = source.feature_names

    def __len__(self) -> int:
        return len(self.indices)

    def task(self, index: int) -> Task:
        return self.source.task(self.indices[index])


def carve_split(source: TaskSource, split: str) -> TaskSource:
    """``source`` itself for a base split, else its ``split`` carve."""
    return source if split == source.split else CarvedTaskSource(source, split)
