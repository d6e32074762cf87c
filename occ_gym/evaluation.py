"""One evaluation loop for every policy: baselines and learned ones alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from occ_gym.baselines.base import Policy
from occ_gym.envs.code_env import occ_env
from occ_gym.validation import positive_int

EPISODE_COLUMNS = (
    "hidden_pass",
    "public_pass",
    "compute",
    "model_compute",
    "tokens",
    "wall_ms",
    "return",
    "abstained",
    "truncated",
    "steps",
    "repairs",
    "first_tier",
    "difficulty",
)
"""What ``run_episodes`` records per episode: booleans as 0/1, ``model_compute`` the models'
share of ``compute`` (the rest is VERIFY), ``first_tier`` the tier of the first ATTEMPT (-1 for
none), ``difficulty`` the task's latent difficulty (nan where the task source has none)."""


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


def run_episodes(
    policy: Policy,
    env: gym.Env,
    episodes: int,
    *,
    seed: int = 0,
    deterministic: bool = True,
) -> dict[str, np.ndarray]:
    """Run ``policy`` on ``episodes`` problems; episode i is ``env.reset(seed=seed + i)``.

    Returns one array per ``EPISODE_COLUMNS`` entry, one value per episode. Every policy run
    with the same env and seed meets the same problems and the same fixed attempt outcomes, so
    differences between policies are not sampling noise in the env. A policy with an
    ``observe_episode(info)`` method is shown each finished episode's info.
    """
    positive_int("episodes", episodes)
    inner = occ_env(env)
    layout = inner.action_layout
    observe = getattr(policy, "observe_episode", None)
    rows = np.zeros((episodes, len(EPISODE_COLUMNS)))
    for episode in range(episodes):
        obs, reset_info = env.reset(seed=seed + episode)
        difficulty = inner.task.difficulty
        episode_return, done, repairs, first_tier = 0.0, False, 0, -1
        episode_start = np.ones((1,), dtype=bool)
        while not done:
            predicted, _ = policy.predict(
                obs,
                episode_start=episode_start,
                deterministic=deterministic,
                action_masks=inner.action_masks(),
            )
            action = int(np.asarray(predicted).reshape(()))
            if first_tier < 0 and action < layout.num_tiers:
                first_tier = action
            repairs += int(action == layout.repair)
            obs, reward, terminated, truncated, info = env.step(action)
            episode_return += float(reward)
            episode_start = np.zeros((1,), dtype=bool)
            done = terminated or truncated
        if "outcome" not in info:  # cut short by a wrapper (TimeLimit), not by the env
            info = {**info, **inner.truncation_summary()}
        rows[episode] = (
            info["hidden_pass"],
            info["public_pass"],
            info["compute"],
            sum(info["tier_compute"]),
            info["tokens"],
            info["wall_ms"],
            episode_return,
            info["outcome"] == "abstained",
            info["outcome"] == "truncated",
            info["steps"],
            repairs,
            first_tier,
            np.nan if difficulty is None else difficulty,
        )
        if observe is not None:
            observe({**info, "task_id": reset_info["task_id"]})
    return {name: rows[:, i].copy() for i, name in enumerate(EPISODE_COLUMNS)}


def evaluate(
    policy: Policy,
    env: gym.Env,
    episodes: int,
    *,
    seed: int = 0,
    deterministic: bool = True,
    name: str | None = None,
) -> EvaluationResult:
    """The means of ``run_episodes(policy, env, episodes, seed=seed)``."""
    log = run_episodes(policy, env, episodes, seed=seed, deterministic=deterministic)
    return EvaluationResult(
        policy=name or str(getattr(policy, "name", type(policy).__name__)),
        episodes=episodes,
        seed=seed,
        hidden_pass_rate=float(log["hidden_pass"].mean()),
        public_pass_rate=float(log["public_pass"].mean()),
        mean_compute=float(log["compute"].mean()),
        mean_tokens=float(log["tokens"].mean()),
        mean_return=float(log["return"].mean()),
        abstain_rate=float(log["abstained"].mean()),
        truncation_rate=float(log["truncated"].mean()),
        mean_steps=float(log["steps"].mean()),
    )
