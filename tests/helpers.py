"""Helpers the tests share: crafted tiers with certain outcomes (so baselines can be checked
exactly), one-episode rollouts, and the sandbox uids the tests' verifiers use."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import occ_gym  # noqa: F401  (registers the environments)

SANDBOX_UID_BASE = 61_000
"""Child uids of the tests' sandboxes (a concurrent run elsewhere should pick another base)."""
SANDBOX_WORKERS = 2

NEVER = {"name": "never", "cost": 10.0, "easy_pass": 0.0, "hard_pass": 0.0, "hidden_falloff": 0.0}
"""A tier whose candidates always fail (cheapest)."""
ALWAYS = {
    "name": "always",
    "cost": 100.0,
    "easy_pass": 1.0,
    "hard_pass": 1.0,
    "hidden_falloff": 0.0,
}
"""A tier whose candidates always pass public and hidden tests."""
CERTAIN = {"hidden_pass_if_public_fail": 0.0}


def make_crafted_env(**kwargs) -> gym.Env:
    """OCC-CodeSim-v0 with a never-passing cheap tier and an always-passing dear one."""
    kwargs.setdefault("tiers", [ALWAYS, NEVER])
    kwargs.setdefault("simulation", CERTAIN)
    return gym.make("OCC-CodeSim-v0", **kwargs)


def rollout(env: gym.Env, policy, seed: int) -> tuple[list[int], float, dict]:
    """Actions, return and final info of one episode of ``policy``."""
    obs, _ = env.reset(seed=seed)
    actions, total, done = [], 0.0, False
    while not done:
        mask = env.unwrapped.action_masks()
        action, _ = policy.predict(obs, action_masks=mask)
        action = int(np.asarray(action))
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return actions, total, info
