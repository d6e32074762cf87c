"""Trained allocators behind the baselines' ``predict`` interface: ``load_policy(path)``."""

from __future__ import annotations

import argparse
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

import occ_gym  # noqa: F401  (registers the env ids that gym.spec reads)
from occ_gym.economics.oracle import ImpactOracle
from occ_gym.resources import POLICIES_DIR

RUN_FILE = "run.json"

"""Shipped policies: ``<env id>/policy.zip`` with the ``run.json`` of the run that made it,
trained at the env's own compute weight λ; ``<env id>/lambda=<λ>/`` holds the same recipe
trained at other λ (the points of its cost-quality curve); ``<env id>/<algo>/seed=<k>/`` holds
one training seed of a learner's recipe (its ``best.zip``, chosen on val), several seeds making
one benchmark row."""
MASKABLE_MODULE = "sb3_contrib.common.maskable.policies"


class PolicyFileError(ValueError):
    """A file that is not a readable SB3 PPO or MaskablePPO checkpoint."""


class LearnedPolicy:
    """A PPO or MaskablePPO model with the same ``predict`` as the baselines.

    With ``action_masks``, both take only legal actions: MaskablePPO masks its distribution as
    it was trained to; plain PPO, trained without masks, takes its most probable legal action
    (or samples among legal actions when not deterministic).
    """

    batchable = True

    def __init__(self, model: BaseAlgorithm, name: str):
        self.model = model
        self.name = name
        self.maskable = isinstance(model, MaskablePPO)

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> LearnedPolicy:
        path = Path(path)
        algorithm = MaskablePPO if _is_maskable(path) else PPO
        try:
            model = algorithm.load(path, device="cpu")
        except Exception as error:
            raise PolicyFileError(
                f"{path}: cannot load the {algorithm.__name__} policy: {error}"
            ) from error
        label = name or f"{algorithm.__name__}({_short(path)})"
        return cls(model, label)

    def check_fits(self, env: gym.Env, source: str = "") -> None:
        """Refuse, with a clear message, a policy trained for another env id or spaces."""
        where = source or self.name
        record = _run_record_beside(Path(source)) if source else None
        env_id = env.spec.id if env.spec is not None else None
        if record is not None and env_id is not None and record.get("env_id") != env_id:
            raise PolicyFileError(
                f"{where} was trained on {record.get('env_id')}, not on {env_id}: bench it there"
            )
        for name in ("observation_space", "action_space"):
            trained, here = getattr(self.model, name), getattr(env.unwrapped, name)
            if trained.shape != here.shape or getattr(trained, "n", None) != getattr(
                here, "n", None
            ):
                raise PolicyFileError(
                    f"{where}: its {name} {trained} does not match {env_id}'s {here}"
                )

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        if self.maskable or action_masks is None:
            kwargs = {"action_masks": action_masks} if self.maskable else {}
            return self.model.predict(observation, state, episode_start, deterministic, **kwargs)
        policy: Any = self.model.policy  # a (maskable) actor-critic policy, untyped in SB3
        obs = np.asarray(observation, dtype=np.float32)
        batch = obs.reshape(-1, obs.shape[-1])
        masks = np.asarray(action_masks, dtype=bool).reshape(len(batch), -1)
        with torch.no_grad():
            tensor, _ = policy.obs_to_tensor(batch)
            logits = policy.get_distribution(tensor).distribution.logits
            logits = logits.masked_fill(~torch.as_tensor(masks), -torch.inf)
            if deterministic:
                chosen = logits.argmax(dim=1)
            else:
                chosen = torch.distributions.Categorical(logits=logits).sample()
        actions = chosen.cpu().numpy()
        actions = actions.astype(np.int64)
        return (actions if obs.ndim == 2 else actions[0]), state

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "class": type(self.model).__name__}

    def __repr__(self) -> str:
        return self.name


def load_policy(path: str | Path, name: str | None = None) -> LearnedPolicy:
    """The policy saved at ``path`` (a ``.zip`` that SB3 wrote, or a run folder, whose
    ``last.zip`` is used: name ``best.zip`` to get that one), ready for
    ``occ_gym.evaluation.evaluate`` and ``occ-gym bench``."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.zip"
    if not path.is_file():
        raise PolicyFileError(f"no policy file at {path}")
    return LearnedPolicy.load(path, name)


def _run_record_beside(path: Path) -> dict[str, Any] | None:
    """The run.json next to a checkpoint (or in a run folder), if there is a readable one."""
    folder = path if path.is_dir() else path.parent
    try:
        return json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None


def shipped_policy_path(env_id: str) -> Path | None:
    """The policy this package ships for ``env_id`` at its own λ, if any: its
    ``policy.zip``, else the first seed of its shipped MaskablePPO seeds."""
    path = POLICIES_DIR / env_id / "policy.zip"
    if path.is_file():
        return path
    seeds = shipped_seed_sets(env_id).get("maskable_ppo")
    return seeds[0] if seeds else None


def shipped_seed_sets(env_id: str) -> dict[str, list[Path]]:
    """Every learner shipped for ``env_id`` as several training seeds: algo → its
    ``policy.zip`` files by seed."""
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in (POLICIES_DIR / env_id).glob("*/seed=*/policy.zip"):
        seed = int(path.parent.name.removeprefix("seed="))
        found.setdefault(path.parent.parent.name, []).append((seed, path))
    return {algo: [path for _, path in sorted(runs)] for algo, runs in sorted(found.items())}


def registered_compute_penalty(env_id: str) -> float:
    """The compute weight λ an env id is registered with."""
    return ImpactOracle(**(gym.spec(env_id).kwargs.get("oracle") or {})).compute_penalty


def trained_compute_penalty(record: dict[str, Any]) -> float:
    """The compute weight λ of the env a run trained on (its env_kwargs, else the env's own)."""
    trained = record["config"]["env_kwargs"].get("oracle") or {}
    return trained.get("compute_penalty", registered_compute_penalty(record["env_id"]))


def shipped_policies(env_id: str) -> list[tuple[float, Path]]:
    """Every policy shipped for ``env_id`` with the λ it was trained at, by λ."""
    found = []
    folder = POLICIES_DIR / env_id
    for path in sorted([*folder.glob("policy.zip"), *folder.glob("lambda=*/policy.zip")]):
        record = json.loads((path.parent / "run.json").read_text())
        found.append((trained_compute_penalty(record), path))
    return sorted(found)


def _is_maskable(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        return data["policy_class"]["__module__"] == MASKABLE_MODULE
    except (zipfile.BadZipFile, KeyError, TypeError, json.JSONDecodeError, OSError) as error:
        raise PolicyFileError(f"{path}: not a policy saved by SB3 ({error})") from error


def _short(path: Path) -> str:
    parts = path.parts[-2:] if path.parent.name else path.parts[-1:]
    return "/".join(parts)


def ship_policy(
    run_folder: Path, dest: Path, checkpoint: str = "last.zip", seeded: bool = False
) -> Path:
    """Copy a run's checkpoint and run.json under ``dest`` (the checkout's
    ``occ_gym/assets/policies`` to re-make a shipped policy) as its env's policy, or, when
    ``seeded``, as one seed of its learner (``<env>/<algo>/seed=<k>/``)."""
    record = json.loads((run_folder / "run.json").read_text())
    target = dest / record["env_id"]
    penalty = trained_compute_penalty(record)
    if seeded:
        if penalty != registered_compute_penalty(record["env_id"]):
            raise ValueError(f"{run_folder}: seeds are shipped at the env's own λ only")
        target = target / record["algo"] / f"seed={record['seed']}"
    elif penalty != registered_compute_penalty(record["env_id"]):
        target = target / f"lambda={penalty:g}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_folder / checkpoint, target / "policy.zip")
    record["shipped_checkpoint"] = checkpoint
    (target / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description="copy a trained run's policy into a folder")
    parser.add_argument("run_folder", type=Path)
    parser.add_argument(
        "--dest", type=Path, required=True, help="e.g. occ_gym/assets/policies in a checkout"
    )
    parser.add_argument("--checkpoint", default="last.zip")
    parser.add_argument(
        "--seeded", action="store_true", help="ship as one training seed: <env>/<algo>/seed=<k>/"
    )
    args = parser.parse_args()
    print(f"shipped {ship_policy(args.run_folder, args.dest, args.checkpoint, args.seeded)}")


if __name__ == "__main__":
    main()
