"""The one policy interface: SB3's ``predict``, so baselines and learned policies run alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from occ_gym.envs.code_env import occ_env
from occ_gym.envs.layout import ActionLayout, ObservationLayout
from occ_gym.envs.vector_env import occ_vector_env


@runtime_checkable
class Policy(Protocol):
    """Anything with SB3's ``predict`` signature (baselines, PPO, MaskablePPO)."""

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]: ...


class BaselinePolicy(ABC):
    """A hand-written rule that reads the documented observation layout and the action mask."""

    name: str
    batchable: bool = True
    """False for policies bound to one env's episode (they reject a batch of observations)."""

    def __init__(self, env: gym.Env):
        inner = occ_env(env)
        self.actions: ActionLayout = inner.action_layout
        self.observations: ObservationLayout = inner.observation_layout

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions for one observation ``(n_obs,)`` or a batch ``(n_envs, n_obs)``."""
        obs = np.asarray(observation, dtype=np.float32)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.observations.size:
            raise ValueError(
                f"observation must have shape ({self.observations.size},) or "
                f"(n_envs, {self.observations.size}), got {obs.shape}"
            )
        if obs.ndim == 2 and not self.batchable:
            raise ValueError(f"{self.name} runs on one unvectorised env, not a batch")
        batch = obs.reshape(-1, self.observations.size)
        if action_masks is None:
            masks = np.ones((len(batch), self.actions.size), dtype=bool)
        else:
            masks = np.asarray(action_masks, dtype=bool).reshape(len(batch), self.actions.size)
        actions = self.act_batch(batch, masks)
        return (actions if obs.ndim == 2 else actions[0]), state

    def act_batch(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Actions for a batch ``(n, n_obs)`` with its masks; rules written in numpy override
        this, the others inherit one ``act`` per row."""
        return np.array(
            [self.act(o, m) for o, m in zip(observations, masks, strict=True)], dtype=np.int64
        )

    @abstractmethod
    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        """The action for one observation, given the legal-action mask."""

    def __repr__(self) -> str:
        return self.name

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "class": type(self).__name__}


class BatchRule(BaselinePolicy):
    """A rule written in numpy over a whole batch: ``act`` is ``act_batch`` on one row."""

    @abstractmethod
    def act_batch(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray: ...

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        return int(self.act_batch(observation[None], mask[None])[0])


def play_batch(
    venv: gym.vector.VectorEnv,
    act: Callable[[np.ndarray, np.ndarray], np.ndarray],
    seed: int,
) -> np.ndarray:
    """The return of one episode in each sub-env of the native vector env ``venv``, reset with
    ``seed``, ``act(observations, masks)`` choosing every step (so every rule played with the
    same seed meets the same episodes: common random numbers)."""
    inner = occ_vector_env(venv)
    obs, _ = venv.reset(seed=seed)
    returns = np.zeros(inner.num_envs)
    done = np.zeros(inner.num_envs, dtype=bool)
    while not done.all():
        obs, reward, terminated, truncated, _ = venv.step(act(obs, inner.action_masks()))
        returns += np.where(done, 0.0, reward)
        done |= terminated | truncated
    return returns
