"""HindsightOracle: reads the episode's fixed outcomes. An upper bound, never a competitor."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np

from occ_gym.attempt import Attempt
from occ_gym.baselines.base import BaselinePolicy
from occ_gym.envs.code_env import occ_env


class HindsightOracle(BaselinePolicy):
    """The best plan given every attempt's hidden results: an UPPER BOUND, not a policy.

    At the start of each episode it looks at every attempt the episode has fixed
    (``env.peek_attempt``) and follows the plan with the highest score: ``s + 1`` fresh attempts
    of tier ``k`` (the last one is kept), then ``r`` rounds of VERIFY and REPAIR, then SUBMIT,
    within ``max_steps`` and the budget; or ABSTAIN when no plan beats 0. Any candidate the env
    can produce is reached most cheaply by such a plan, so no policy can score more on the same
    seeds. It works on one unvectorised env, the one it was built with.
    """

    name = "HindsightOracle (upper bound)"
    batchable = False

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.env = occ_env(env)
        self._plan: list[int] = []

    def plan(self) -> tuple[list[int], float]:
        """The best action sequence for the current episode and its score."""
        env = self.env
        best_plan, best_score = [self.actions.abstain], 0.0
        for plan, cost, attempt in self._plans():
            score = (
                env.oracle.outcome_value(True, attempt.hidden_passed, attempt.hidden_total)
                - env.oracle.compute_penalty * cost
            )
            if score > best_score:
                best_plan, best_score = plan, score
        return best_plan, best_score

    def cheapest_pass_cost(self) -> float | None:
        """The least compute with which any plan passes the hidden tests this episode (None
        if none does): a floor for every policy, whatever it can see."""
        costs = [cost for _, cost, attempt in self._plans() if attempt.hidden_pass]
        return min(costs) if costs else None

    def _plans(self) -> Iterator[tuple[list[int], float, Attempt]]:
        """Every plan ``s + 1`` fresh attempts of a tier, ``r`` rounds of VERIFY and REPAIR,
        SUBMIT, that fits ``max_steps`` and the budget: its actions, compute and submission."""
        env, actions = self.env, self.actions
        max_rounds = env.executor.repair_limit
        for tier in range(actions.num_tiers):
            fresh_cost = 0.0  # every earlier fresh sample of this tier is paid for, then discarded
            for sample in range(env.max_steps):
                fresh_cost += env.peek_attempt(tier, sample, 0).cost
                cost = fresh_cost
                for repair_round in range(max_rounds + 1):
                    steps = sample + 1 + 2 * repair_round + 1
                    if steps > env.max_steps:
                        break
                    attempt = env.peek_attempt(tier, sample, repair_round)
                    if repair_round:
                        cost += env.verifier_cost + attempt.cost
                    if env.budget is not None and cost > env.budget:
                        break
                    plan = (
                        [actions.attempt(tier)] * (sample + 1)
                        + [actions.verify, actions.repair] * repair_round
                        + [actions.submit]
                    )
                    yield plan, cost, attempt
                    if attempt.public_pass:
                        break  # a candidate that passes VERIFY cannot be repaired

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        if self.observations.steps_used(observation) == 0:
            self._plan = self.plan()[0]
        if not self._plan:
            raise RuntimeError("HindsightOracle ran out of plan: was it used on another env?")
        action = self._plan.pop(0)
        if not mask[action]:
            raise RuntimeError(
                f"HindsightOracle's plan step {self.actions.name(action)} is masked: "
                "it must observe the env it was built with"
            )
        return action
