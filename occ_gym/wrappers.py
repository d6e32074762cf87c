"""Wrappers: the end-of-episode info under any truncation, and one for learners that cannot
read action masks."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from occ_gym.envs.code_env import occ_env


class TruncationInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Gives an episode that a wrapper beneath it truncated (Gymnasium's ``TimeLimit``, which the
    env cannot see) the same end-of-episode info keys as one the env truncated itself
    (``outcome="truncated"``, ``hidden_pass=False``, ``compute``, ...).

    Put it outside the ``TimeLimit``: ``TruncationInfo(gym.make(id, max_episode_steps=N))``.
    (It cannot be registered to do so: ``gym.make_vec`` refuses a spec's extra wrappers in its
    default mode, the native vector env.) Only the info changes: the rewards already agree, as
    a truncated episode submits nothing and so adds no outcome terms. The env's own limit,
    ``max_steps``, needs none of this, and the observation shows the steps it leaves.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if truncated and "outcome" not in info:
            info.update(occ_env(self.env).truncation_summary())
        return obs, reward, terminated, truncated, info


class IllegalActionPenalty(gym.Wrapper):
    """Turns an illegal action into a defined outcome, for policies without masks (plain PPO).

    A legal action steps the env as usual. An illegal one is not executed: the env takes an
    ``idle_step`` instead (nothing happens, no compute is spent, one of the episode's
    ``max_steps`` is used up, so the episode still truncates on time) and the reward is
    ``-penalty``. That step's info says what happened: ``illegal_action`` (the action's name),
    ``illegal_reason`` and ``action="IDLE"``. The action is never swapped for another one.

    Put it directly around the env (beneath ``Monitor``), so every wrapper above it sees the
    idle step as a step. With masks available, use MaskablePPO instead.
    """

    def __init__(self, env: gym.Env, penalty: float = 0.1):
        super().__init__(env)
        occ_env(env)  # an occ-gym env, or a clear TypeError
        if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or penalty < 0:
            raise ValueError(f"penalty must be a number >= 0, got {penalty!r}")
        self.penalty = float(penalty)
        self.illegal_actions = 0
        """Illegal actions taken since the wrapper was made."""

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        inner = occ_env(self.env)
        index = _integer(action)
        if (
            index is not None
            and 0 <= index < inner.action_space.n
            and not inner.action_masks()[index]
        ):
            reason = inner.illegal_reason(index)
            self.illegal_actions += 1
            obs, reward, terminated, truncated, info = inner.idle_step(self.penalty)
            info.update(illegal_action=inner.action_layout.name(index), illegal_reason=reason)
            return obs, reward, terminated, truncated, info
        return self.env.step(action)


def _integer(action: Any) -> int | None:
    """``action`` as an int if it is one integer (the env itself judges anything else)."""
    if type(action) in (int, np.int64):
        return int(action)
    value = np.asarray(action)
    if value.shape in ((), (1,)) and np.issubdtype(value.dtype, np.integer):
        return int(value.reshape(()))
    return None
