"""Task sources: where the problems of an episode come from."""

from __future__ import annotations

from occ_gym.tasks.base import (
    CARVED_SPLITS,
    VALIDATION_EVERY,
    CarvedTaskSource,
    Task,
    TaskSource,
    base_split,
    carve_split,
)
from occ_gym.tasks.simulated import SimulatedTaskSource
from occ_gym.tasks.synthetic import SyntheticTaskSource

TASK_SOURCES = {"simulated": SimulatedTaskSource, "synthetic": SyntheticTaskSource}


def make_task_source(name: str, split: str) -> TaskSource:
    """Build the task source registered under ``name`` for ``split`` (a base split, or one
    carved from it: ``val``, ``fit``)."""
    if name not in TASK_SOURCES:
        raise ValueError(f"unknown task source {name!r}; expected one of {sorted(TASK_SOURCES)}")
    return carve_split(TASK_SOURCES[name](base_split(split)), split)


__all__ = [
    "CARVED_SPLITS",
    "TASK_SOURCES",
    "VALIDATION_EVERY",
    "CarvedTaskSource",
    "SimulatedTaskSource",
    "SyntheticTaskSource",
    "Task",
    "TaskSource",
    "base_split",
    "carve_split",
    "make_task_source",
]
