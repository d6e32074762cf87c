"""Gymnasium's and SB3's env checkers on every registered id, warnings as errors (pyproject)."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from occ_gym import ENV_IDS

VARIANTS = [{}, {"split": "test"}, {"budget": 400.0}, {"max_steps": 3}, {"render_mode": "ansi"}]


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("kwargs", VARIANTS, ids=str)
def test_gymnasium_check_env(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    gymnasium_check_env(env.unwrapped, skip_render_check=not kwargs.get("render_mode"))
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("kwargs", VARIANTS, ids=str)
def test_sb3_check_env(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    sb3_check_env(env, warn=True)
    env.close()


def test_registration_is_idempotent_and_prefixed_id_works():
    import importlib

    import occ_gym

    importlib.reload(occ_gym)
    env = gym.make("occ_gym:OCC-CodeSim-v0")
    assert env.spec.id == "OCC-CodeSim-v0"
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec_round_trips(env_id):
    env = gym.make(env_id, budget=500.0, oracle={"compute_penalty": 0.002})
    spec = gym.spec(env_id)
    assert gym.make(env.spec).spec == env.spec
    assert spec.max_episode_steps is None  # the env truncates itself at max_steps
    env.close()
