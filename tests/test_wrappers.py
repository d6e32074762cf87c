"""IllegalActionPenalty: an illegal action becomes a defined, visible no-op step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.monitor import Monitor

from occ_gym.wrappers import IllegalActionPenalty

SUBMIT = 5  # Discrete(K + 4) with K = 3: 0-2 ATTEMPT, 3 VERIFY, 4 REPAIR, 5 SUBMIT, 6 ABSTAIN


@pytest.fixture(params=["OCC-CodeSim-v0", "OCC-Code-v0"])
def wrapped(request):
    return IllegalActionPenalty(gym.make(request.param), penalty=0.25)


def test_an_illegal_action_is_an_idle_step_with_the_penalty(wrapped):
    obs, _ = wrapped.reset(seed=0)
    assert not wrapped.unwrapped.action_masks()[SUBMIT]  # nothing to submit yet
    after, reward, terminated, truncated, info = wrapped.step(SUBMIT)
    assert reward == -0.25
    assert not terminated and not truncated
    assert info["action"] == "IDLE" and info["illegal_action"] == "SUBMIT"
    assert "no candidate" in info["illegal_reason"]
    assert info["cost"] == 0.0
    layout = wrapped.unwrapped.observation_layout
    steps_left = layout.fields["steps_left"].slice
    assert after[steps_left] < obs[steps_left]  # the idle step used up a step
    changed = np.flatnonzero(after != obs)
    assert set(changed) == set(range(layout.size)[steps_left])
    assert wrapped.illegal_actions == 1


def test_a_legal_action_passes_through_unchanged(wrapped):
    plain = wrapped.unwrapped.spec.id
    reference = gym.make(plain)
    reference.reset(seed=4)
    wrapped.reset(seed=4)
    for action in (2, 3, SUBMIT):
        expected = reference.step(action)
        got = wrapped.step(action)
        assert np.array_equal(expected[0], got[0])
        assert expected[1:4] == got[1:4]
    assert "illegal_action" not in got[4]


def test_illegal_actions_alone_truncate_the_episode_on_time(wrapped):
    wrapped.reset(seed=1)
    max_steps = wrapped.unwrapped.max_steps
    for step in range(1, max_steps + 1):
        _, reward, terminated, truncated, info = wrapped.step(SUBMIT)
        assert reward == -0.25
        assert truncated == (step == max_steps) and not terminated
    assert info["outcome"] == "truncated" and info["hidden_pass"] is False
    with pytest.raises(RuntimeError, match="reset"):
        wrapped.step(SUBMIT)


def test_bad_actions_still_raise_and_the_penalty_is_checked(wrapped):
    wrapped.reset(seed=0)
    with pytest.raises(ValueError, match="outside"):
        wrapped.step(99)
    with pytest.raises(ValueError, match="penalty"):
        IllegalActionPenalty(wrapped.env, penalty=-1)


def test_the_wrapped_env_passes_sb3_check_env(wrapped):
    check_env(wrapped, warn=True)


def test_plain_ppo_trains_through_the_wrapper_and_its_idle_steps_are_counted():
    env = IllegalActionPenalty(gym.make("OCC-CodeSim-v0"), penalty=0.1)
    model = PPO("MlpPolicy", Monitor(env), seed=0, n_steps=128, batch_size=64, n_epochs=1)
    model.learn(512)  # the env raises on a masked action: finishing means the wrapper caught all
    assert env.illegal_actions > 0  # an untrained PPO does try illegal actions
