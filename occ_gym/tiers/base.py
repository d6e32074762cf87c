"""The protocol every code-writing tier follows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from occ_gym.attempt import Attempt
from occ_gym.tasks.base import Task

if TYPE_CHECKING:
    from occ_gym.traces.table import TraceTable

DRAWS_PER_ATTEMPT = 4
"""Uniform random numbers the environment hands a tier for each attempt."""


@runtime_checkable
class Tier(Protocol):
    """Something that writes a candidate solution for a task.

    ``attempt`` must be a pure function of its arguments: the environment computes ``draws``
    from its seed (``rules.uniforms``), so the same seed gives the same candidate.
    """

    name: str
    nominal_cost: float
    """Cost units of a fresh attempt on a typical prompt (for scales and priors)."""

    def attempt_cost(self, task: Task, repair_round: int) -> float:
        """Cost units of the next attempt, known before it is made (the broker needs it)."""
        ...

    def attempt(
        self,
        task: Task,
        sample: int,
        repair_round: int,
        draws: Sequence[float],
        parent: Attempt | None,
    ) -> Attempt:
        """Write a candidate: fresh when ``repair_round == 0``, else a repair of ``parent``."""
        ...


@runtime_checkable
class ClosableTier(Protocol):
    """A tier holding processes or files to release when its env closes."""

    def close(self) -> None: ...


@runtime_checkable
class RecordedTier(Protocol):
    """A tier that replays a recorded trace table: a fixed set of samples per task, repairs up
    to what the table holds (``None`` when it writes what is missing), and every recorded
    attempt as arrays for the vector env."""

    name: str
    samples_per_task: int
    recorded_repair_rounds: int | None
    task_count: int
    traces: TraceTable
    max_new_tokens: int
    """The most tokens one attempt writes (the observation's length scale)."""

    def outcome_table(self, task_ids: list[str], rounds: int) -> dict[str, np.ndarray]: ...

    def asset_files(self) -> list[Path]:
        """The files the tier's behaviour depends on (``env_hash`` digests them)."""
        ...


@runtime_checkable
class BatchedTier(Protocol):
    """A tier that computes many attempts at once from their draws (the vector env's path)."""

    def outcomes(
        self,
        difficulty: np.ndarray,
        public_tests: np.ndarray,
        hidden_tests: np.ndarray,
        prompt_tokens: np.ndarray,
        draws: np.ndarray,
        repair_round: np.ndarray,
        parent_error: np.ndarray,
    ) -> dict[str, np.ndarray]: ...
