"""Simulated tasks: a latent difficulty that a policy sees only through noisy prompt features."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from occ_gym.tasks.base import CARVED_SPLITS, Task

TASK_TABLE_SEED = 20_261_121
"""Seed of the fixed task tables: the task set is data, not episode randomness."""


class SimulatedTaskSource:
    """A fixed table of simulated tasks for one split.

    Each task has a latent difficulty ``d ~ Beta(1.3, 1.3)``. Its four prompt features are
    ``clip(d + noise, 0, 1)`` with noise of growing standard deviation (``FEATURE_NOISE``), so
    a policy can estimate the difficulty from the prompt, but never exactly. The train and test
    tables are drawn from different seeds and never share a task id.
    """

    SPLITS: ClassVar[dict[str, int]] = {"train": 10_000, "test": 2_000}
    feature_names: tuple[str, ...] = (
        "prompt_length",
        "operation_words",
        "constraint_words",
        "example_size",
    )
    FEATURE_NOISE: ClassVar[tuple[float, ...]] = (0.15, 0.2, 0.3, 0.4)

    def __init__(self, split: str = "train", *, public_tests: int = 2, hidden_tests: int = 10):
        if split not in self.SPLITS:
            raise ValueError(
                f"unknown split {split!r}; expected one of {sorted([*self.SPLITS, *CARVED_SPLITS])}"
            )
        if public_tests < 1 or hidden_tests < 1:
            raise ValueError("public_tests and hidden_tests must be >= 1")
        self.split = split
        self.public_tests = public_tests
        self.hidden_tests = hidden_tests
        split_index = list(self.SPLITS).index(split)
        rng = np.random.default_rng([TASK_TABLE_SEED, split_index])
        size = self.SPLITS[split]
        self.difficulty = rng.beta(1.3, 1.3, size=size)
        noise = rng.normal(0.0, self.FEATURE_NOISE, size=(size, len(self.FEATURE_NOISE)))
        self.features = np.clip(self.difficulty[:, None] + noise, 0.0, 1.0).astype(np.float32)
        # Longer prompts cost more tokens: 80 to 320 tokens, read off the length feature.
        self.prompt_tokens = (80 + 240 * self.features[:, 0]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.difficulty)

    def task(self, index: int) -> Task:
        return Task(
            task_id=f"sim-{self.split}-{index:05d}",
            prompt_features=self.features[index],
            public_tests=self.public_tests,
            hidden_tests=self.hidden_tests,
            prompt_tokens=int(self.prompt_tokens[index]),
            difficulty=float(self.difficulty[index]),
        )
