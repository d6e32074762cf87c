"""RandomPolicy: uniform over the legal actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from occ_gym.baselines.base import BaselinePolicy


class RandomPolicy(BaselinePolicy):
    """Picks uniformly among the legal actions, from its own seeded generator."""

    def __init__(self, env: gym.Env, seed: int | None = 0):
        super().__init__(env)
        self.rng = np.random.default_rng(seed)
        self.name = "RandomPolicy"

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        return int(self.rng.choice(np.flatnonzero(mask)))
