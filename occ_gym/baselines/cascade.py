"""The tuned threshold cascade: the routing literature's strongest simple rule, grid-searched.

A cascade (FrugalGPT, AutoMix) calls tiers in a fixed order and stops at the first candidate it
accepts. ``CascadeRule`` says how: the order (tiers may repeat, for another sample), whether to
VERIFY each candidate, a confidence threshold (the tier's own token probability, on envs that
show it), how many REPAIRs a failed candidate gets before escalating, and what to do when the
order is used up (submit the best candidate, or abstain unless one passed its public tests).
``tune_cascade`` grid-searches every rule on the training split with the native vector env and
common random numbers, so every rule plays the same episodes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from occ_gym.baselines.base import BatchRule, play_batch
from occ_gym.envs.layout import VERDICTS, ActionLayout, ObservationLayout
from occ_gym.envs.vector_env import occ_vector_env

CONFIDENCE_THRESHOLDS = (0.0, 0.85, 0.9, 0.93, 0.96)
"""Thresholds on ``candidate_confidence`` the grid tries (0: accept whatever the tier says)."""
MAX_ORDER = 3
"""The longest tier order the grid tries (with repeats, 5 tiers give 155 orders)."""
PASSED, FAILED = VERDICTS.index("passed"), VERDICTS.index("failed")


@dataclass(frozen=True)
class CascadeRule:
    """One cascade: tiers in order, and when to accept, repair, escalate and give up."""

    order: tuple[str, ...]
    verify: bool = True
    threshold: float = 0.0
    """Accept a candidate only if its confidence is at least this (0: always)."""
    repairs: int = 0
    """REPAIRs of a failed candidate before the next tier (needs ``verify``)."""
    on_exhausted: str = "submit"
    """``submit`` the best candidate, or ``abstain`` unless one passed its public tests."""

    def __post_init__(self) -> None:
        if not self.order:
            raise ValueError("a cascade needs at least one tier")
        if self.on_exhausted not in ("submit", "abstain"):
            raise ValueError(
                f"on_exhausted must be 'submit' or 'abstain', not {self.on_exhausted!r}"
            )
        if self.repairs < 0 or (self.repairs and not self.verify):
            raise ValueError(
                "repairs must be >= 0, and need verify (REPAIR follows a failed VERIFY)"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    @property
    def label(self) -> str:
        parts = [" → ".join(self.order), "verify" if self.verify else "no verify"]
        if self.threshold:
            parts.append(f"confidence ≥ {self.threshold:g}")
        if self.repairs:
            parts.append(f"{self.repairs} repair" + ("s" if self.repairs > 1 else ""))
        parts.append(self.on_exhausted + " when exhausted")
        return ", ".join(parts)


class ThresholdCascade(BatchRule):
    """A ``CascadeRule`` as a policy, in numpy over a whole batch (for tuning)."""

    def __init__(self, env: gym.Env, rule: CascadeRule, name: str | None = None):
        super().__init__(env)
        unknown = [tier for tier in rule.order if tier not in self.actions.tier_names]
        if unknown:
            raise ValueError(
                f"unknown tiers {unknown}; this env has {list(self.actions.tier_names)}"
            )
        if rule.threshold and "candidate_confidence" not in self.observations.fields:
            raise ValueError("this env shows no candidate confidence: use threshold=0")
        self.rule = rule
        self.name = name or f"Cascade({rule.label})"
        self._order = np.array([self.actions.tier_index(t) for t in rule.order] + [-1])

    def act_batch(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return cascade_actions(
            self.rule, self._order, observations, masks, self.actions, self.observations
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rule": asdict(self.rule)}


def cascade_actions(
    rule: CascadeRule,
    order: np.ndarray,
    obs: np.ndarray,
    masks: np.ndarray,
    actions: ActionLayout,
    layout: ObservationLayout,
) -> np.ndarray:
    """The rule's action for each row of ``obs`` (``order``: tier indices, then -1)."""
    at = layout.fields
    seen = layout.decode(obs)
    has, verdict, repair_round = seen.has_candidate, seen.verdict, seen.repair_round
    made, steps_left, best_passed = seen.attempts.sum(axis=1), seen.steps_left, seen.best_passed
    if "candidate_confidence" in at:
        confident = obs[:, at["candidate_confidence"].start] >= rule.threshold - 1e-6
    else:
        confident = np.ones(len(obs), dtype=bool)
    next_tier = order[np.minimum(made, len(order) - 1)]
    passed, failed = has & (verdict == PASSED), has & (verdict == FAILED)
    unverified = has & ~passed & ~failed

    accepted = (passed if rule.verify else unverified) & confident
    exhausted_submit = has & (
        (rule.on_exhausted == "submit") | passed | (rule.verify & best_passed)
    )
    give_up = np.where(exhausted_submit, actions.submit, actions.abstain)
    # A new candidate needs the steps to be written, verified (if the rule verifies) and handed
    # in; with fewer left the rule gives up rather than submit something it never checked.
    room = steps_left >= (3 if rule.verify else 2)
    out = np.where((next_tier >= 0) & room, next_tier, give_up)
    repair = failed & (repair_round < rule.repairs) & masks[:, actions.repair] & room
    out = np.where(repair, actions.repair, out)
    out = np.where(accepted, actions.submit, out)
    if rule.verify:
        out = np.where(unverified & masks[:, actions.verify], actions.verify, out)
    out = np.where(~has, order[0], out)
    # The last step: hand in what there is rather than be truncated with nothing.
    out = np.where(steps_left <= 1, give_up, out)
    legal = masks[np.arange(len(out)), out]
    return np.where(legal, out, np.where(has, actions.submit, actions.abstain)).astype(np.int64)


def cascade_grid(
    tier_names: Sequence[str], confidence: bool, max_order: int = MAX_ORDER
) -> list[CascadeRule]:
    """Every rule the tuner tries: orders up to ``max_order`` long, verify or not, each
    threshold (when the env shows confidence), 0 or 1 repair, either exhaustion rule."""
    thresholds = CONFIDENCE_THRESHOLDS if confidence else (0.0,)
    orders: Iterable[tuple[str, ...]] = itertools.chain.from_iterable(
        itertools.product(tier_names, repeat=n) for n in range(1, max_order + 1)
    )
    rules = []
    for order in orders:
        for verify, threshold, exhausted in itertools.product(
            (True, False), thresholds, ("submit", "abstain")
        ):
            for repairs in (0, 1) if verify else (0,):
                rules.append(CascadeRule(order, verify, threshold, repairs, exhausted))
    return rules


def play_rules(venv: gym.vector.VectorEnv, rules: Sequence[CascadeRule], seed: int) -> np.ndarray:
    """Mean return of each rule over the same episodes: one per sub-env of the native vector
    env ``venv``, reset with ``seed`` for every rule (common random numbers)."""
    inner = occ_vector_env(venv)
    actions, layout = inner.action_layout, inner.observation_layout
    means = np.zeros(len(rules))
    for index, rule in enumerate(rules):
        order = np.array([actions.tier_index(t) for t in rule.order] + [-1])
        act = partial(cascade_actions, rule, order, actions=actions, layout=layout)
        means[index] = play_batch(venv, act, seed).mean()
    return means


@dataclass(frozen=True)
class CascadeFit:
    """What tuning found: the best rule, its training return, and the grid it beat."""

    rule: CascadeRule
    train_return: float
    rules_tried: int
    episodes: int
    seed: int
    seconds: float
    runners_up: tuple[tuple[str, float], ...]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rule"] = {**asdict(self.rule), "label": self.rule.label}
        return data


def tune_cascade(
    env_id: str,
    episodes: int = 2000,
    seed: int = 0,
    split: str = "train",
    max_order: int = MAX_ORDER,
    verify: bool | None = None,
    **env_kwargs: Any,
) -> CascadeFit:
    """The best rule of ``cascade_grid`` by mean return on ``split`` (never the test split);
    ``verify`` keeps only the rules that VERIFY (True) or only those that never do (False: an
    AutoMix-style cascade that escalates on the tier's own confidence)."""
    if split == "test":
        raise ValueError("tune on a training split (train, fit or val), never on test")
    started = time.perf_counter()
    venv = gym.make_vec(env_id, num_envs=episodes, split=split, **env_kwargs)
    try:
        inner = occ_vector_env(venv)
        confidence = "candidate_confidence" in inner.observation_layout.fields
        rules = cascade_grid(inner.action_layout.tier_names, confidence, max_order)
        rules = [rule for rule in rules if verify is None or rule.verify == verify]
        means = play_rules(venv, rules, seed)
    finally:
        venv.close()
    ranking = np.argsort(-means, kind="stable")
    best = rules[int(ranking[0])]
    return CascadeFit(
        rule=best,
        train_return=round(float(means[ranking[0]]), 5),
        rules_tried=len(rules),
        episodes=episodes,
        seed=seed,
        seconds=round(time.perf_counter() - started, 1),
        runners_up=tuple((rules[int(i)].label, round(float(means[i]), 5)) for i in ranking[1:6]),
    )
