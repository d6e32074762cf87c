"""MaskablePPO reads the env's masks through wrappers; a tiny real training run works."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from occ_gym.baselines import HindsightOracle


class OnlyOracleAction(gym.Wrapper):
    """Masks every action but the hindsight oracle's next one."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.oracle = HindsightOracle(env)
        self.planned_returns: list[float] = []
        self.returns: list[float] = []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._obs, self._next, self._return = obs, None, 0.0
        self.planned_returns.append(self.oracle.plan()[1])
        return obs, info

    def action_masks(self) -> np.ndarray:
        if self._next is None:
            mask = self.env.unwrapped.action_masks()
            self._next = int(self.oracle.predict(self._obs, action_masks=mask)[0])
        only = np.zeros(self.action_space.n, dtype=bool)
        only[self._next] = True
        return only

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._obs, self._next = obs, None
        self._return += reward
        if terminated or truncated:
            self.returns.append(self._return)
        return obs, reward, terminated, truncated, info


def test_untrained_maskable_ppo_follows_a_single_legal_action():
    wrapper = OnlyOracleAction(gym.make("OCC-CodeSim-v0"))
    vec_env = DummyVecEnv([lambda: Monitor(wrapper)])
    model = MaskablePPO("MlpPolicy", vec_env, seed=0, n_steps=32, batch_size=32)
    vec_env.seed(0)
    obs = vec_env.reset()
    while len(wrapper.returns) < 30:
        action, _ = model.predict(obs, action_masks=get_action_masks(vec_env), deterministic=False)
        obs, _, _, _ = vec_env.step(action)
    returns = np.array(wrapper.returns)
    assert returns == pytest.approx(wrapper.planned_returns[: len(returns)])
    assert returns.mean() > 0.5


@pytest.mark.parametrize("kwargs", [{}, {"budget": 300.0}])
def test_maskable_ppo_learns_a_few_steps_and_never_takes_a_masked_action(kwargs):
    env = Monitor(gym.make("OCC-CodeSim-v0", **kwargs))
    model = MaskablePPO("MlpPolicy", env, seed=0, n_steps=64, batch_size=32, n_epochs=1)
    model.learn(256)  # the env raises on any masked action, so finishing is the check
    obs, _ = env.reset(seed=1)
    for _ in range(200):
        action, _ = model.predict(obs, action_masks=env.get_wrapper_attr("action_masks")())
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
