"""VerifierGuided: attempt, verify, repair with the feedback until the public tests pass."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from occ_gym.baselines.base import BaselinePolicy
from occ_gym.validation import positive_int


class VerifierGuided(BaselinePolicy):
    """Verifier-guided retry on one tier.

    Writes a candidate, verifies it, and while it fails REPAIRs it (a fresh ATTEMPT when a
    repair is not possible), up to ``max_tries`` candidates in all; submits the first that
    passes its public tests, or, after ``max_tries``, whatever the env submits (the best verified).
    """

    def __init__(self, env: gym.Env, tier: int | str = -1, max_tries: int = 3):
        super().__init__(env)
        positive_int("max_tries", max_tries)
        if tier == -1:
            tier = self.actions.num_tiers - 1
        self.tier = self.actions.tier_index(tier)
        self.max_tries = max_tries
        self.name = f"VerifierGuided({self.actions.tier_names[self.tier]}, {max_tries})"

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        actions, layout = self.actions, self.observations
        verdict = layout.verdict(observation)
        tries = int(layout.attempts_made(observation)[self.tier]) + layout.repair_round(observation)
        attempt = actions.attempt(self.tier)
        if verdict is None:
            return attempt if mask[attempt] else actions.abstain
        if verdict == "unverified" and mask[actions.verify]:
            return actions.verify
        if verdict == "failed" and tries < self.max_tries:
            if mask[actions.repair]:
                return actions.repair
            if mask[attempt]:
                return attempt
        return actions.submit
