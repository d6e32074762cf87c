"""HeuristicOCC: a cheap-first cascade whose tier order comes from a credit ledger."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from occ_gym.baselines.base import BaselinePolicy
from occ_gym.economics.ledger import CreditLedger
from occ_gym.envs.code_env import occ_env


class HeuristicOCC(BaselinePolicy):
    """Cascade: try tiers in order of ledger credit per cost, verify each, stop at the first pass.

    The ledger holds, per tier, credit earned (public passes) and compute spent, both decaying
    with ``decay`` per episode. It starts from a prior of ``prior_pass_rate`` passes per
    ``prior_weight`` attempts at nominal cost, which orders tiers cheapest first; after each
    episode ``observe_episode`` books what the episode showed, so the order can change. When
    every tier failed, it submits the best verified candidate (``on_exhausted="submit"``) or
    abstains (``"abstain"``). ``depth`` (the cascade's length) limits it to the first ``depth``
    tiers of that order; the default tries them all.
    """

    AGENT = "heuristic_occ"

    def __init__(
        self,
        env: gym.Env,
        *,
        decay: float = 0.01,
        prior_pass_rate: float = 0.5,
        prior_weight: float = 5.0,
        on_exhausted: str = "submit",
        depth: int | None = None,
    ):
        super().__init__(env)
        tiers = self.actions.num_tiers
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= tiers
        ):
            raise ValueError(f"depth must be an int in [1, {tiers}] or None, got {depth!r}")
        self.depth = tiers if depth is None else depth
        if on_exhausted not in ("submit", "abstain"):
            raise ValueError(f"on_exhausted must be 'submit' or 'abstain', got {on_exhausted!r}")
        if not 0.0 < prior_pass_rate <= 1.0 or prior_weight <= 0:
            raise ValueError("prior_pass_rate must be in (0, 1] and prior_weight > 0")
        inner = occ_env(env)
        self.verifier_cost = inner.verifier_cost
        self.on_exhausted = on_exhausted
        self.ledger = CreditLedger(decay=decay)
        for name, cost in zip(self.actions.tier_names, inner.tier_costs, strict=True):
            self.ledger.earn(self.AGENT, name, prior_pass_rate * prior_weight, reason="prior")
            self.ledger.spend(
                self.AGENT, name, (cost + self.verifier_cost) * prior_weight, reason="prior"
            )
        knobs = [f"depth {depth}"] if self.depth != tiers else []
        knobs += ["abstain"] if on_exhausted == "abstain" else []
        self.name = "HeuristicOCC" + (f"({', '.join(knobs)})" if knobs else "")

    def tier_order(self) -> list[int]:
        """Tier indices, best credit per cost first."""
        names = self.actions.tier_names
        value = [
            self.ledger.earned(self.AGENT, n) / max(self.ledger.spent(self.AGENT, n), 1e-9)
            for n in names
        ]
        return sorted(range(len(names)), key=lambda k: -value[k])

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        actions, layout = self.actions, self.observations
        verdict = layout.verdict(observation)
        if verdict == "passed":
            return actions.submit
        if verdict == "unverified" and mask[actions.verify]:
            return actions.verify
        tried = layout.attempts_made(observation)
        for tier in self.tier_order()[: self.depth]:
            if tried[tier] == 0 and mask[actions.attempt(tier)]:
                return actions.attempt(tier)
        if verdict is not None and self.on_exhausted == "submit":
            return actions.submit
        return actions.abstain

    def observe_episode(self, info: dict[str, Any]) -> None:
        """Book an episode's per-tier public passes and compute into the ledger."""
        self.ledger.advance(1.0)
        for name, passes, attempts, compute in zip(
            self.actions.tier_names,
            info["tier_public_passes"],
            info["tier_attempts"],
            info["tier_compute"],
            strict=True,
        ):
            if attempts == 0:
                continue
            if passes:
                self.ledger.earn(
                    self.AGENT,
                    name,
                    float(passes),
                    reason="public pass",
                    task_id=info.get("task_id"),
                )
            self.ledger.spend(
                self.AGENT,
                name,
                compute + self.verifier_cost * attempts,
                reason="attempts",
                task_id=info.get("task_id"),
            )
