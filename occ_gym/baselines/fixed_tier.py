"""FixedTier: one attempt with one tier, submitted unverified (e.g. "always the big model")."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from occ_gym.baselines.base import BaselinePolicy


class FixedTier(BaselinePolicy):
    """ATTEMPT(tier), then SUBMIT. Abstains if the broker denies the tier."""

    def __init__(self, env: gym.Env, tier: int | str):
        super().__init__(env)
        self.tier = self.actions.tier_index(tier)
        self.name = f"FixedTier({self.actions.tier_names[self.tier]})"

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        if self.observations.verdict(observation) is not None and mask[self.actions.submit]:
            return self.actions.submit
        attempt = self.actions.attempt(self.tier)
        return attempt if mask[attempt] else self.actions.abstain
