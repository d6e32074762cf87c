"""GRPO, group-relative policy optimisation (DeepSeekMath), critic-free, in one readable file.

One update:

1. draw ``problems`` seeds; play each seed ``group_size`` times at once in the env's native
   vector env, every member of a group reset with the same seed, so it meets the same task and
   the same attempt draws and the members differ only by the actions the policy samples;
2. an episode's advantage is its return minus its group's mean return, divided by the group's
   standard deviation (plus ``1e-8``; ``scale_by_std=false`` keeps only the difference, as
   Dr. GRPO does); every step of the episode gets it;
3. ``n_epochs`` passes over the steps in minibatches of ``batch_size``: PPO's clipped ratio loss
   against the policy that collected them, minus ``ent_coef`` times the entropy, plus
   ``kl_coef`` times the k3 estimate of the KL to the reference policy (the one the run started
   from; 0 turns it off, as DAPO does).

Truncation is the env's: an episode cut at ``max_steps`` ends with its compute charged and no
submission, and its return says so. The policy is sb3-contrib's ``MaskableActorCriticPolicy``
inside a ``MaskablePPO`` object whose value head is never trained, so a checkpoint is an
ordinary MaskablePPO zip: ``load_policy``, ``occ-gym bench`` and ``predict(action_masks=)``
read it as they read PPO's, and ``--resume`` continues its weights and optimiser state.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from sb3_contrib import MaskablePPO
from torch.utils.tensorboard import SummaryWriter

from occ_gym.envs.vector_env import occ_vector_env
from occ_gym.evaluation import evaluate
from occ_gym.policies.learned import LearnedPolicy


@dataclass(frozen=True)
class Rollout:
    """The steps of one update's episodes, flattened, with each step's episode advantage."""

    obs: torch.Tensor
    actions: torch.Tensor
    masks: torch.Tensor
    log_probs: torch.Tensor
    advantages: torch.Tensor
    returns: np.ndarray
    """One per episode."""
    hidden_pass: np.ndarray
    truncated: np.ndarray


class GRPO:
    """The GRPO trainer of one env id and split; ``model`` is the MaskablePPO it trains."""

    def __init__(
        self,
        env_id: str,
        *,
        split: str = "fit",
        env_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        group_size: int = 8,
        problems: int = 64,
        n_epochs: int = 4,
        batch_size: int = 256,
        learning_rate: float = 3e-4,
        clip_range: float = 0.2,
        ent_coef: float = 0.0,
        kl_coef: float = 0.0,
        scale_by_std: bool = True,
        max_grad_norm: float = 0.5,
        policy_kwargs: dict[str, Any] | None = None,
        model: MaskablePPO | None = None,
    ):
        if group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 (a group compares rollouts), got {group_size}"
            )
        for name, value in (
            ("problems", problems),
            ("n_epochs", n_epochs),
            ("batch_size", batch_size),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.env_id, self.split, self.seed = env_id, split, seed
        self.env_kwargs = dict(env_kwargs or {})
        self.group_size, self.problems = group_size, problems
        self.n_epochs, self.batch_size = n_epochs, batch_size
        self.clip_range, self.ent_coef, self.kl_coef = clip_range, ent_coef, kl_coef
        self.scale_by_std, self.max_grad_norm = scale_by_std, max_grad_norm
        self.env = gym.make(env_id, split=split, **self.env_kwargs)
        if model is None:
            model = MaskablePPO(
                "MlpPolicy",
                self.env,
                learning_rate=learning_rate,
                policy_kwargs=policy_kwargs,
                seed=seed,
                device="cpu",
                verbose=0,
            )
        self.model = model
        self.reference = copy.deepcopy(model.policy) if kl_coef > 0 else None
        self.rng = np.random.default_rng([seed, model.num_timesteps])
        self.venv = gym.make_vec(
            env_id,
            num_envs=problems * group_size,
            split=split,
            autoreset_mode=AutoresetMode.NEXT_STEP,
            **self.env_kwargs,
        )
        self.updates = int(getattr(model, "_n_updates", 0))

    def close(self) -> None:
        self.venv.close()
        self.env.close()

    def collect(self) -> Rollout:
        """Play every group's episodes once (see the module docstring, step 1)."""
        inner = occ_vector_env(self.venv)
        seeds = self.rng.integers(0, 2**31 - 1, size=self.problems)
        group_seeds: Any = [int(s) for s in np.repeat(seeds, self.group_size)]
        obs, _ = self.venv.reset(seed=group_seeds)  # the native vector env takes one per env
        n = inner.num_envs
        live = np.ones(n, dtype=bool)
        returns = np.zeros(n)
        hidden = np.zeros(n, dtype=bool)
        truncated_at_end = np.zeros(n, dtype=bool)
        steps: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "a", "m", "lp", "env")}
        policy = self.model.policy
        while live.any():
            masks = inner.action_masks()
            with torch.no_grad():
                tensor = torch.as_tensor(obs, dtype=torch.float32)
                distribution = policy.get_distribution(tensor, action_masks=masks)
                actions = distribution.get_actions(deterministic=False)
                log_probs = distribution.log_prob(actions)
            chosen = actions.numpy().astype(np.int64)
            rows = np.flatnonzero(live)
            steps["obs"].append(obs[rows])
            steps["a"].append(chosen[rows])
            steps["m"].append(masks[rows])
            steps["lp"].append(log_probs.numpy()[rows])
            steps["env"].append(rows)
            obs, reward, terminated, truncated, info = self.venv.step(chosen)
            returns += np.where(live, reward, 0.0)
            ended = live & (terminated | truncated)
            if ended.any():
                hidden |= ended & np.asarray(info.get("hidden_pass", np.zeros(n, dtype=bool)))
                truncated_at_end |= ended & truncated
            live &= ~ended
        self.model.num_timesteps += int(sum(len(r) for r in steps["env"]))
        groups = returns.reshape(self.problems, self.group_size)
        advantage = groups - groups.mean(axis=1, keepdims=True)
        if self.scale_by_std:
            advantage = advantage / (groups.std(axis=1, keepdims=True) + 1e-8)
        per_env = advantage.reshape(-1)
        env_of_step = np.concatenate(steps["env"])
        return Rollout(
            obs=torch.as_tensor(np.concatenate(steps["obs"]), dtype=torch.float32),
            actions=torch.as_tensor(np.concatenate(steps["a"])),
            masks=torch.as_tensor(np.concatenate(steps["m"])),
            log_probs=torch.as_tensor(np.concatenate(steps["lp"])),
            advantages=torch.as_tensor(per_env[env_of_step], dtype=torch.float32),
            returns=returns,
            hidden_pass=hidden,
            truncated=truncated_at_end,
        )

    def update(self, rollout: Rollout) -> dict[str, float]:
        """Steps 2 and 3 of the module docstring on one rollout; returns the update's stats."""
        policy = self.model.policy
        policy.set_training_mode(True)
        size = len(rollout.actions)
        stats: dict[str, list[float]] = {"loss": [], "clip_fraction": [], "entropy": [], "kl": []}
        generator = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
        for _ in range(self.n_epochs):
            order = torch.randperm(size, generator=generator)
            for start in range(0, size, self.batch_size):
                batch = order[start : start + self.batch_size]
                _, log_prob, entropy = policy.evaluate_actions(
                    rollout.obs[batch], rollout.actions[batch], action_masks=rollout.masks[batch]
                )
                advantage = rollout.advantages[batch]
                ratio = torch.exp(log_prob - rollout.log_probs[batch])
                clipped = torch.clamp(ratio, 1 - self.clip_range, 1 + self.clip_range)
                loss = -torch.min(ratio * advantage, clipped * advantage).mean()
                entropy_mean = entropy.mean() if entropy is not None else torch.tensor(0.0)
                loss = loss - self.ent_coef * entropy_mean
                kl = torch.tensor(0.0)
                if self.reference is not None:
                    with torch.no_grad():
                        _, reference, _ = self.reference.evaluate_actions(
                            rollout.obs[batch],
                            rollout.actions[batch],
                            action_masks=rollout.masks[batch],
                        )
                    log_ratio = reference - log_prob
                    kl = (torch.exp(log_ratio) - log_ratio - 1).mean()
                    loss = loss + self.kl_coef * kl
                policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), self.max_grad_norm)
                policy.optimizer.step()
                stats["loss"].append(loss.detach().item())
                stats["clip_fraction"].append(
                    float(((ratio - 1).abs() > self.clip_range).float().mean())
                )
                stats["entropy"].append(entropy_mean.detach().item())
                stats["kl"].append(kl.detach().item())
        policy.set_training_mode(False)
        self.updates += 1
        self.model._n_updates = self.updates
        return {name: float(np.mean(values)) for name, values in stats.items()}

    def learn(
        self,
        total_timesteps: int,
        writer: SummaryWriter | None = None,
        on_update: Any = None,
    ) -> MaskablePPO:
        """Update until the model has seen ``total_timesteps`` env steps; after each update
        ``on_update(self)`` is called (evaluation and checkpoints hook in there)."""
        while self.model.num_timesteps < total_timesteps:
            started = time.perf_counter()
            rollout = self.collect()
            stats = self.update(rollout)
            if writer is not None:
                step = self.model.num_timesteps
                writer.add_scalar("rollout/ep_rew_mean", float(rollout.returns.mean()), step)
                writer.add_scalar(
                    "rollout/hidden_pass_mean", float(rollout.hidden_pass.mean()), step
                )
                writer.add_scalar("rollout/truncation_rate", float(rollout.truncated.mean()), step)
                for name, value in stats.items():
                    writer.add_scalar(f"train/{name}", value, step)
                writer.add_scalar("time/update_seconds", time.perf_counter() - started, step)
            if on_update is not None:
                on_update(self)
        return self.model

    def evaluate(self, env: gym.Env, episodes: int, seed: int) -> dict[str, float]:
        """Deterministic held-out return and hidden-pass rate of the current policy."""
        result = evaluate(LearnedPolicy(self.model, "GRPO"), env, episodes, seed=seed)
        return {"mean_return": result.mean_return, "hidden_pass_rate": result.hidden_pass_rate}
