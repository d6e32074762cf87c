"""The executor: fixed attempts per episode, and rotation through a recorded tier's samples."""

from __future__ import annotations

import numpy as np

from occ_gym.attempt import Attempt, ErrorKind
from occ_gym.envs import rules
from occ_gym.envs.executor import Executor
from occ_gym.tasks.base import Task
from occ_gym.tiers.base import RecordedTier

TASK = Task("t/0", np.zeros(4, dtype=np.float32), 2, 10, 50)


class FourSampleTier:
    """A recorded tier with four fixed samples per task; it reports which one it was asked for."""

    name = "recorded"
    nominal_cost = 1.0
    samples_per_task = 4
    recorded_repair_rounds = None
    task_count = 1
    traces = None
    max_new_tokens = 96

    def outcome_table(self, task_ids, rounds):
        raise NotImplementedError

    def asset_files(self):
        return []

    def attempt_cost(self, task, repair_round):
        return 1.0

    def attempt(self, task, sample, repair_round, draws, parent):
        return Attempt(sample, repair_round, 0, 2, 0, 10, ErrorKind.WRONG_ANSWER, 1.0, 5, 5)


def test_recorded_samples_rotate_from_a_random_offset_without_repeats():
    assert isinstance(FourSampleTier(), RecordedTier)
    executor = Executor([FourSampleTier()], max_steps=8)
    offsets = set()
    for seed in range(20):
        executor.begin_episode(TASK, rules.episode_base(12345, seed))
        samples = [executor.attempt(0, n, 0).sample for n in range(8)]
        assert sorted(samples[:4]) == [0, 1, 2, 3]  # every sample before any repeat
        assert samples[4:] == samples[:4]
        offsets.add(samples[0])
        assert executor.attempt(0, 1, 2).sample == samples[1]  # repairs keep their sample
    assert len(offsets) > 1
