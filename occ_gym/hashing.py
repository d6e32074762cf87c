"""Stable hashes of configurations and of the environment a result came from, and the library
versions it ran with.

Python's ``hash`` changes between processes; these never do: a blake2b digest of canonical
JSON (sorted keys, no spaces) and SHA-256 digests of the asset files an env reads.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import gymnasium as gym

import occ_gym
from occ_gym.envs.code_env import occ_env
from occ_gym.tiers.base import RecordedTier


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no whitespace; tuples become lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_jsonable)


def stable_hash(value: Any, length: int = 16) -> str:
    """A hex digest of ``value``'s canonical JSON, identical in every process and run."""
    digest = hashlib.blake2b(canonical_json(value).encode(), digest_size=length // 2)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def env_hash(env: gym.Env) -> str:
    """What decides an env's behaviour: its id and keyword arguments, the package version, and
    the bytes of the trace tables and model files it reads."""
    inner = occ_env(env)
    spec = inner.spec
    assets = {str(path.name): file_digest(path) for path in sorted(_asset_files(inner))}
    return stable_hash(
        {
            "id": spec.id if spec is not None else None,
            "kwargs": dict(spec.kwargs) if spec is not None else None,
            "occ_gym": occ_gym.__version__,
            "assets": assets,
        }
    )


def _asset_files(inner: Any) -> set[Path]:
    files: set[Path] = set()
    for tier in inner.tiers:
        if isinstance(tier, RecordedTier):
            files.update(tier.asset_files())
    return files


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot hash a {type(value).__name__} as JSON")


LIBRARIES = ("gymnasium", "numpy", "torch", "stable-baselines3", "sb3-contrib", "pyarrow")


def library_versions() -> dict[str, str]:
    """occ-gym's, Python's and the main libraries' versions, for a result's provenance."""
    versions = {"occ_gym": occ_gym.__version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name.replace("-", "_")] = version(name)
        except PackageNotFoundError:
            versions[name.replace("-", "_")] = "not installed"
    return versions
