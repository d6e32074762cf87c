"""The native vector env as a stable-baselines3 ``VecEnv`` (imports SB3, and so torch)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from occ_gym.envs.vector_env import OCCVectorEnv


class SB3VecEnv(VecEnv):
    """An ``OCCVectorEnv`` (in SAME_STEP autoreset) as a stable-baselines3 ``VecEnv``: what
    ``MaskablePPO`` trains on without a Python env per worker. Infos carry SB3's
    ``terminal_observation`` and ``TimeLimit.truncated`` plus the episode's numbers."""

    def __init__(self, venv: OCCVectorEnv):
        if venv.metadata["autoreset_mode"] != AutoresetMode.SAME_STEP:
            raise ValueError("SB3VecEnv needs an OCCVectorEnv made with autoreset_mode=SAME_STEP")
        self.venv = venv
        self.render_mode = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        seeds = None if all(s is None for s in self._seeds) else self._seeds
        obs, _ = self.venv.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i] = _sub_env_info(info, int(i))
            infos[i]["terminal_observation"] = infos[i].pop("final_obs")
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def action_masks(self) -> np.ndarray:
        return self.venv.action_masks()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None] * len(list(self._get_indices(indices)))
        value = getattr(self.venv, attr_name)
        return [value] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"SB3VecEnv cannot set {attr_name!r} on the batched env")

    def env_method(
        self, method_name: str, *args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list[Any]:
        rows = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.venv.action_masks()
            return [masks[i] for i in rows]
        raise AttributeError(f"SB3VecEnv has no per-env method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks" or hasattr(self.venv, attr_name)


def make_sb3_vec_env(env_id: str, num_envs: int, **overrides: Any) -> SB3VecEnv:
    """The native vector env of ``env_id`` (its registered kwargs, then ``overrides``), with
    SAME_STEP autoreset, adapted for stable-baselines3."""
    if env_id not in gym.registry:
        ours = sorted(name for name in gym.registry if name.startswith("OCC-"))
        raise ValueError(f"unknown env id {env_id!r}; occ-gym registers {ours}")
    kwargs = {**gym.spec(env_id).kwargs, **overrides}
    return SB3VecEnv(OCCVectorEnv(num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs))


def _sub_env_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s entries of a batched info, nested dicts included, without the masks."""
    return {
        name: _sub_env_info(value, i) if isinstance(value, dict) else value[i]
        for name, value in info.items()
        if not name.startswith("_")
    }
