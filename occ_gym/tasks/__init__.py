"""Task sources: where the problems of an episode come from."""

from __future__ import annotations

from occ_gym.tasks.base import Task, TaskSource
from occ_gym.tasks.simulated import SimulatedTaskSource
from occ_gym.tasks.synthetic import SyntheticTaskSource

TASK_SOURCES = {"simulated": SimulatedTaskSource, "synthetic": SyntheticTaskSource}


def make_task_source(name: str, split: str) -> TaskSource:
    """Build the task source registered under ``name`` for ``split``."""
    if name not in TASK_SOURCES:
        raise ValueError(f"unknown task source {name!r}; expected one of {sorted(TASK_SOURCES)}")
    return TASK_SOURCES[name](split)


__all__ = [
    "TASK_SOURCES",
    "SimulatedTaskSource",
    "SyntheticTaskSource",
    "Task",
    "TaskSource",
    "make_task_source",
]
