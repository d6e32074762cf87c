"""Executor: memoised attempts, (tier, sample, repair round) -> Attempt, within one episode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from occ_gym.attempt import Attempt
from occ_gym.envs import rules
from occ_gym.envs.layout import max_repair_rounds
from occ_gym.tasks.base import Task
from occ_gym.tiers.base import DRAWS_PER_ATTEMPT, RecordedTier, Tier


class AttemptKey(NamedTuple):
    """Which attempt of an episode: the tier, its n-th fresh sample, and the repair round."""

    tier: int
    sample: int
    repair_round: int


class Executor:
    """Calls tiers and remembers what they wrote.

    At the start of an episode the environment hands over the task and its ``np_random``; the
    executor draws every random number the episode could need at once, so attempt
    ``(tier, sample, round)`` is fixed for the episode whether or not, and in whatever order,
    it is asked for. That makes the same seed give the same episode, and lets an upper-bound
    baseline look ahead (``peek``) without changing anything.

    A recorded tier (``RecordedTier``) has a fixed set of samples per task; the episode's n-th
    fresh attempt with it replays ``rules.rotated_sample``, so repeats come only after every
    sample has been used.
    """

    def __init__(self, tiers: Sequence[Tier], max_steps: int):
        self.tiers = list(tiers)
        self.max_samples = max_steps
        self.max_repair_rounds = max_repair_rounds(max_steps)
        recorded = [
            tier.recorded_repair_rounds for tier in self.tiers if isinstance(tier, RecordedTier)
        ]
        self.repair_limit = min(
            [self.max_repair_rounds, *(rounds for rounds in recorded if rounds is not None)]
        )
        """The deepest repair an action may ask for: what ``max_steps`` reaches, and no deeper
        than a replayed tier's table holds (the mask's REPAIR rule reads it)."""
        shape = (len(self.tiers), self.max_samples, self.max_repair_rounds + 1, DRAWS_PER_ATTEMPT)
        self._draws = np.zeros(shape)
        self._cache: dict[AttemptKey, Attempt] = {}
        self._samples_per_task = [
            tier.samples_per_task if isinstance(tier, RecordedTier) else None for tier in self.tiers
        ]
        self._task: Task | None = None

    @property
    def draw_shape(self) -> tuple[int, ...]:
        """(tiers, samples, repair rounds + 1, draws per attempt): what each reset draws."""
        return self._draws.shape

    def begin_episode(self, task: Task, rng: np.random.Generator) -> None:
        self._task = task
        rules.draw_attempts(rng, self._draws)
        self._cache.clear()

    def cost(self, tier: int, repair_round: int) -> float:
        return self.tiers[tier].attempt_cost(self._require_task(), repair_round)

    def attempt(self, tier: int, sample: int, repair_round: int) -> Attempt:
        """Fresh sample `sample` of `tier`, repaired `repair_round` times."""
        key = AttemptKey(tier, sample, repair_round)
        attempt = self._cache.get(key)
        if attempt is None:
            if not (0 <= sample < self.max_samples and 0 <= repair_round <= self.max_repair_rounds):
                raise IndexError(
                    f"attempt {key} is beyond this episode's {self.max_samples} samples "
                    f"and {self.max_repair_rounds} repair rounds"
                )
            parent = self.attempt(tier, sample, repair_round - 1) if repair_round else None
            attempt = self.tiers[tier].attempt(
                self._require_task(),
                self._tier_sample(tier, sample),
                repair_round,
                self._draws[key],
                parent,
            )
            self._cache[key] = attempt
        return attempt

    def _tier_sample(self, tier: int, sample: int) -> int:
        samples = self._samples_per_task[tier]
        if samples is None:
            return sample
        offset = int(rules.rotation_offset(self._draws[tier, 0, 0, -1], samples))
        return rules.rotated_sample(offset, sample, samples)

    def _require_task(self) -> Task:
        if self._task is None:
            raise RuntimeError("no episode has begun: call begin_episode (env.reset) first")
        return self._task
