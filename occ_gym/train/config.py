"""What a training run is: ``TrainConfig`` and its choices, importable without torch or SB3
(the CLI builds its options from them)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

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


class TrainError(ValueError):
    """A training request that cannot run (raised before any training starts)."""


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value (``learning_rate=1e-3``, ``policy_kwargs={net_arch=[32]}``);
    a value that is not TOML is taken as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise TrainError(f"an override is key=value, got {text!r}")
    try:
        parsed = tomllib.loads(f"value = {value.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


def toml_value(value: Any) -> str:
    """``value`` as the TOML text ``parse_override`` reads back."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


PATH_KWARGS = ("traces", "pool", "tasks", "models")
"""Env keywords that name files or folders: their value is the text as given (a folder named
``2024-06-01`` is not a TOML date)."""


def parse_env_kwarg(text: str) -> tuple[str, Any]:
    """``parse_override`` for a ``gym.make`` keyword, paths kept as written."""
    key, value = parse_override(text)
    if key in PATH_KWARGS and not isinstance(value, str):
        value = text.partition("=")[2].strip()
    return key, value
