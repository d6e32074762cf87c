"""The protocol every code-writing tier follows."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from occ_gym.attempt import Attempt
from occ_gym.tasks.base import Task

DRAWS_PER_ATTEMPT = 4
"""Uniform random numbers the environment hands a tier for each attempt."""


@runtime_checkable
class Tier(Protocol):
    """Something that writes a candidate solution for a task.

    ``attempt`` must be a pure function of its arguments: the environment draws ``draws`` from
    its own ``np_random``, so the same seed gives the same candidate.
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
        draws: np.ndarray,
        parent: Attempt | None,
    ) -> Attempt:
        """Write a candidate: fresh when ``repair_round == 0``, else a repair of ``parent``."""
        ...
