"""Best-of-n routed by the prompt, in the manner of BEST-Route: per kind of problem, which tier
to call and how many samples to draw, the public tests selecting among them.

A ``BestOfNRule`` writes up to ``n`` fresh candidates of one tier, VERIFYs each, SUBMITs the
first that passes its public tests, and when ``n`` are spent submits the best verified one (or
abstains unless one passed). ``BestRoute`` picks a rule per prompt bucket (text or ints, how
many clauses the description has); ``tune_best_route`` plays every rule on the same training
episodes (common random numbers) and keeps, per bucket, the rule of best mean return there.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from occ_gym.baselines.base import BatchRule, play_batch
from occ_gym.envs.layout import VERDICTS, ActionLayout, ObservationLayout
from occ_gym.envs.vector_env import occ_vector_env

SAMPLES = (1, 2, 3, 4)
"""The sample counts ``tune_best_route`` tries per tier."""
PASSED, FAILED = VERDICTS.index("passed"), VERDICTS.index("failed")


@dataclass(frozen=True)
class BestOfNRule:
    """Up to ``n`` verified samples of ``tier``; ``on_exhausted`` as in ``CascadeRule``."""

    tier: str
    n: int
    on_exhausted: str = "abstain"

    @property
    def label(self) -> str:
        return f"best of {self.n} {self.tier}, {self.on_exhausted} when exhausted"


def prompt_buckets(obs: np.ndarray, layout: ObservationLayout) -> np.ndarray:
    """Each observation's prompt bucket: ``2 * clauses + text`` where the task source has those
    features (0 to 9), else 0."""
    names = layout.feature_names
    features = obs[:, layout["prompt_features"]]
    bucket = np.zeros(len(obs), dtype=np.int64)
    if "clauses" in names:
        bucket += 2 * np.clip(np.rint(features[:, names.index("clauses")] * 4), 0, 4).astype(int)
    if "text_domain" in names:
        bucket += (features[:, names.index("text_domain")] > 0.5).astype(int)
    return bucket


BUCKETS = 10


def best_of_n_actions(
    tiers: np.ndarray,
    samples: np.ndarray,
    submit_when_exhausted: np.ndarray,
    obs: np.ndarray,
    masks: np.ndarray,
    actions: ActionLayout,
    layout: ObservationLayout,
) -> np.ndarray:
    """The action of each row's rule (``tiers``, ``samples``, exhaustion: one per row)."""
    seen = layout.decode(obs)
    rows = np.arange(len(obs))
    has, verdict = seen.has_candidate, seen.verdict
    passed, failed = has & (verdict == PASSED), has & (verdict == FAILED)
    unverified = has & ~passed & ~failed
    made = seen.attempts[rows, tiers]
    give_up = np.where(
        has & (submit_when_exhausted | passed | seen.best_passed), actions.submit, actions.abstain
    )
    again = (made < samples) & (seen.steps_left >= 3) & masks[rows, tiers]
    out = np.where(again, tiers, give_up)
    out = np.where(passed, actions.submit, out)
    out = np.where(unverified & masks[:, actions.verify], actions.verify, out)
    out = np.where(~has, tiers, out)
    out = np.where(has & (seen.steps_left <= 1), give_up, out)
    legal = masks[rows, out]
    return np.where(legal, out, np.where(has, actions.submit, actions.abstain)).astype(np.int64)


class BestRoute(BatchRule):
    """A ``BestOfNRule`` per prompt bucket (``prompt_buckets``)."""

    def __init__(self, env: gym.Env, rules: dict[int, BestOfNRule], name: str = "BestRoute"):
        super().__init__(env)
        missing = sorted(set(range(BUCKETS)) - set(rules))
        if missing:
            raise ValueError(f"BestRoute needs a rule for every prompt bucket; missing {missing}")
        self.rules = rules
        self.name = name
        self._tier = np.array([self.actions.tier_index(rules[b].tier) for b in range(BUCKETS)])
        self._n = np.array([rules[b].n for b in range(BUCKETS)])
        self._submit = np.array([rules[b].on_exhausted == "submit" for b in range(BUCKETS)])

    def act_batch(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        bucket = prompt_buckets(observations, self.observations)
        return best_of_n_actions(
            self._tier[bucket],
            self._n[bucket],
            self._submit[bucket],
            observations,
            masks,
            self.actions,
            self.observations,
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rules": {b: r.label for b, r in self.rules.items()}}


@dataclass(frozen=True)
class BestRouteFit:
    """What ``tune_best_route`` found: the rule per bucket and the training return."""

    rules: dict[int, BestOfNRule]
    train_return: float
    episodes_per_bucket: dict[int, int]
    rules_tried: int
    episodes: int
    seed: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rules"] = {str(b): r.label for b, r in self.rules.items()}
        data["episodes_per_bucket"] = {str(b): n for b, n in self.episodes_per_bucket.items()}
        return data


def tune_best_route(
    env_id: str, episodes: int = 2000, seed: int = 0, split: str = "train", **env_kwargs: Any
) -> BestRouteFit:
    """Every tier x ``SAMPLES`` x exhaustion rule on the same ``episodes`` of ``split`` (never
    test); per prompt bucket the best rule there (a bucket no episode met takes the best rule
    overall)."""
    if split == "test":
        raise ValueError("tune best-of-n on a training split (train, fit or val), never on test")
    started = time.perf_counter()
    venv = gym.make_vec(env_id, num_envs=episodes, split=split, **env_kwargs)
    try:
        inner = occ_vector_env(venv)
        actions, layout = inner.action_layout, inner.observation_layout
        grid = [
            BestOfNRule(tier, n, exhausted)
            for tier, n, exhausted in itertools.product(
                actions.tier_names, SAMPLES, ("submit", "abstain")
            )
        ]
        obs, _ = venv.reset(seed=seed)
        buckets = prompt_buckets(obs, layout)
        returns = np.zeros((len(grid), episodes))
        for index, rule in enumerate(grid):
            tiers = np.full(episodes, actions.tier_index(rule.tier))
            samples = np.full(episodes, rule.n)
            submit = np.full(episodes, rule.on_exhausted == "submit")
            act = partial(best_of_n_actions, tiers, samples, submit, actions=actions, layout=layout)
            returns[index] = play_batch(venv, act, seed)
    finally:
        venv.close()
    overall = int(np.argmax(returns.mean(axis=1)))
    rules, counts, chosen_returns = {}, {}, np.zeros(episodes)
    for bucket in range(BUCKETS):
        inside = buckets == bucket
        counts[bucket] = int(inside.sum())
        best = int(np.argmax(returns[:, inside].mean(axis=1))) if inside.any() else overall
        rules[bucket] = grid[best]
        chosen_returns[inside] = returns[best, inside]
    return BestRouteFit(
        rules=rules,
        train_return=round(float(chosen_returns.mean()), 5),
        episodes_per_bucket=counts,
        rules_tried=len(grid),
        episodes=episodes,
        seed=seed,
        seconds=round(time.perf_counter() - started, 1),
    )
