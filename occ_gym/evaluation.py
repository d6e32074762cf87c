"""One evaluation loop for every policy: baselines and learned ones alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from occ_gym.baselines.base import Policy
from occ_gym.env import occ_env


@dataclass(frozen=True)
class EvaluationResult:
    """Means over ``episodes`` seeded problems (rates in [0, 1])."""

    policy: str
    episodes: int
    seed: int
    hidden_pass_rate: float
    public_pass_rate: float
    mean_compute: float
    mean_tokens: float
    mean_return: float
    abstain_rate: float
    truncation_rate: float
    mean_steps: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    policy: Policy,
    env: gym.Env,
    episodes: int,
    *,
    seed: int = 0,
    deterministic: bool = True,
    name: str | None = None,
) -> EvaluationResult:
    """Run ``policy`` on ``episodes`` problems; episode i is ``env.reset(seed=seed + i)``.

    Every policy evaluated with the same env and seed meets the same problems and the same
    fixed attempt outcomes, so differences between policies are not sampling noise in the env.
    A policy with an ``observe_episode(info)`` method is shown each finished episode's info.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    masks_of = occ_env(env).action_masks
    observe = getattr(policy, "observe_episode", None)
    rows = np.zeros((episodes, 8))
    for episode in range(episodes):
        obs, reset_info = env.reset(seed=seed + episode)
        episode_return, done = 0.0, False
        episode_start = np.ones((1,), dtype=bool)
        while not done:
            action, _ = policy.predict(
                obs,
                episode_start=episode_start,
                deterministic=deterministic,
                action_masks=masks_of(),
            )
            obs, reward, terminated, truncated, info = env.step(int(np.asarray(action).reshape(())))
            episode_return += float(reward)
            episode_start = np.zeros((1,), dtype=bool)
            done = terminated or truncated
        rows[episode] = (
            info["hidden_pass"],
            info["public_pass"],
            info["compute"],
            info["tokens"],
            episode_return,
            info["outcome"] == "abstained",
            info["outcome"] == "truncated",
            info["steps"],
        )
        if observe is not None:
            observe({**info, "task_id": reset_info["task_id"]})
    means = rows.mean(axis=0)
    return EvaluationResult(
        policy=name or getattr(policy, "name", type(policy).__name__),
        episodes=episodes,
        seed=seed,
        hidden_pass_rate=float(means[0]),
        public_pass_rate=float(means[1]),
        mean_compute=float(means[2]),
        mean_tokens=float(means[3]),
        mean_return=float(means[4]),
        abstain_rate=float(means[5]),
        truncation_rate=float(means[6]),
        mean_steps=float(means[7]),
    )
