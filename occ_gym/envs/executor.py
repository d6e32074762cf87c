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

    At the start of an episode the environment hands over the task and the episode's base word
    (``rules.episode_base``); each attempt's draws are ``rules.uniforms`` at that attempt's own
    counters, so attempt ``(tier, sample, round)`` is fixed for the episode whether or not, and
    in whatever order, it is asked for, and computing one draws nothing for the others. That
    makes the same seed give the same episode, and lets an upper-bound baseline look ahead
    (``peek``) without changing anything.

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
        self.draw_hashes = rules.counter_hash(
            rules.draw_counter(*np.indices(self.draw_shape, dtype=np.uint64))
        )
        """``rules.counter_hash`` of every draw an episode's attempts can read, by
        ``(tier, sample, round, draw)``."""
        self._hash_lists: list[list[list[list[int]]]] = self.draw_hashes.tolist()
        self._cache: dict[AttemptKey, Attempt] = {}
        self._samples_per_task = [
            tier.samples_per_task if isinstance(tier, RecordedTier) else None for tier in self.tiers
        ]
        self._offsets: list[int | None] = [None] * len(self.tiers)
        self._task: Task | None = None
        self._base = 0

    @property
    def draw_shape(self) -> tuple[int, int, int, int]:
        """(tiers, samples, repair rounds + 1, draws per attempt): the draws an episode's
        attempts can read."""
        return (len(self.tiers), self.max_samples, self.max_repair_rounds + 1, DRAWS_PER_ATTEMPT)

    def begin_episode(self, task: Task, base: int) -> None:
        """Start an episode of ``task`` whose draws derive from ``base``."""
        self._task = task
        self._base = base
        self._cache.clear()
        self._offsets = [None] * len(self.tiers)

    def draws(self, key: AttemptKey) -> list[float]:
        """The ``DRAWS_PER_ATTEMPT`` uniforms attempt ``key`` reads this episode."""
        base = self._base
        hashes = self._hash_lists[key.tier][key.sample][key.repair_round]
        return [rules.uniforms(base, hashed) for hashed in hashes]

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
            tier_sample = self._tier_sample(tier, sample)
            task = self._require_task()
            recorded = self._samples_per_task[tier] is not None
            draws = _NO_DRAWS if recorded else self.draws(key)  # a recorded attempt reads none
            attempt = self.tiers[tier].attempt(task, tier_sample, repair_round, draws, parent)
            self._cache[key] = attempt
        return attempt

    def _tier_sample(self, tier: int, sample: int) -> int:
        samples = self._samples_per_task[tier]
        if samples is None:
            return sample
        offset = self._offsets[tier]
        if offset is None:
            # The rotation reads the last draw of the tier's first attempt.
            draw = rules.uniforms(self._base, self._hash_lists[tier][0][0][-1])
            offset = self._offsets[tier] = int(rules.rotation_offset(draw, samples))
        return rules.rotated_sample(offset, sample, samples)

    def _require_task(self) -> Task:
        if self._task is None:
            raise RuntimeError("no episode has begun: call begin_episode (env.reset) first")
        return self._task


_NO_DRAWS: list[float] = []
