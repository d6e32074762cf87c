"""What a training run is: ``TrainConfig`` and its choices, importable without torch or SB3
(the CLI builds its options from them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ALGORITHM_NAMES = ("maskable_ppo", "ppo", "grpo")
VEC_ENVS = ("dummy", "subproc", "native")
"""How the training envs are batched: Python envs in one process, one per subprocess, or the
native ``occ_gym.envs.vector_env`` env (numpy over all envs; MaskablePPO only)."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``None`` for timesteps or n_envs means the hyperparameter file's."""

    env_id: str = "OCC-Code-v1"
    algo: str = "maskable_ppo"
    out: str = "runs/occ"
    seed: int = 0
    timesteps: int | None = None
    n_envs: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Hyperparameters that replace the file's for this run."""
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    train_split: str = "fit"
    eval_split: str = "val"
    """The split ``best.zip`` is chosen on: carved from ``train``, disjoint from ``fit``."""
    test_split: str = "test"
    """The split ``run.json``'s final metrics are scored on (never used for a choice)."""
    eval_episodes: int = 200
    eval_every: int = 20_000
    """Env steps between held-out evaluations (and saves of last.zip)."""
    eval_seed: int = 0
    """Held-out episode i has seed ``eval_seed + i``, as in ``occ-gym bench --seed``."""
    vec_env: str = "dummy"
    torch_threads: int = 1
    resume: str | None = None
    """A checkpoint to continue from, with the hyperparameters it was saved with; its step
    count counts towards ``timesteps``."""
