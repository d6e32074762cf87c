"""A learned router in the manner of RouteLLM and FrugalGPT: predict, per tier, whether its
candidate will pass the hidden tests, route to the best expected value, verify, and escalate
until a candidate is accepted.

Two logistic models, fitted on episodes of a training split (never test):

- the **route** model, one per tier: P(hidden pass | prompt features) of that tier's first
  fresh candidate (RouteLLM's win-rate predictor, with the hidden tests as the judge);
- the **accept** model: P(hidden pass | what the observation shows of the current verified
  candidate): the prompt, its tier, verdict, share of public tests passed, error kind and
  repair round and, with ``answer_side``, its confidence, least likely token, length and
  agreement with an earlier candidate (FrugalGPT's generation scorer).

The rule: with no candidate, ATTEMPT the tier of highest ``P(pass) - cost_weight * cost /
costliest``; VERIFY each candidate; SUBMIT it when the accept model gives at least
``accept_at``; else REPAIR it (up to ``repairs`` times) or ATTEMPT the next tier by the same
score, up to ``max_calls`` fresh candidates and ``per_tier`` per tier; when those run out, submit
the best candidate if one passed its public tests, else abstain. ``tune_router`` fits the models
and grid-searches those four knobs on the same training episodes (common random numbers).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from occ_gym.baselines.base import BatchRule, play_batch
from occ_gym.envs.layout import ANSWER_SIGNAL_FIELDS, VERDICTS, ActionLayout, ObservationLayout
from occ_gym.envs.rules import FAILED
from occ_gym.envs.vector_env import occ_vector_env

ROUTE_FIELDS = ("prompt_features",)
ACCEPT_FIELDS = (
    "prompt_features",
    "candidate_tier",
    "candidate_verdict",
    "error_kind",
    "public_pass_fraction",
    "context_length",
)
ANSWER_FIELDS = tuple(name for name, _, _ in ANSWER_SIGNAL_FIELDS)
PASSED = VERDICTS.index("passed")
GRID: dict[str, tuple[Any, ...]] = {
    "cost_weight": (0.0, 0.25, 0.5, 1.0, 2.0),
    "accept_at": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    "max_calls": (1, 2, 3),
    "per_tier": (1, 2),
    "repairs": (0, 1),
}
"""The knobs ``tune_router`` searches (420 settings)."""


@dataclass(frozen=True)
class Logistic:
    """A fitted logistic model over some observation fields, applied in numpy."""

    fields: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def features(self, obs: np.ndarray, layout: ObservationLayout) -> np.ndarray:
        return np.concatenate([obs[:, layout[name]] for name in self.fields], axis=1)

    def probability(self, obs: np.ndarray, layout: ObservationLayout) -> np.ndarray:
        logit = self.features(obs, layout) @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-logit))


def fit_logistic(
    fields: tuple[str, ...], obs: np.ndarray, passed: np.ndarray, layout: ObservationLayout
) -> Logistic:
    """L2-regularised logistic regression (scikit-learn) of ``passed`` on ``fields``."""
    from sklearn.linear_model import LogisticRegression

    empty = Logistic(fields, (0.0,) * sum(layout.fields[f].size for f in fields), 0.0)
    if len(np.unique(passed)) < 2:  # one class only: predict its rate
        rate = float(np.clip(np.mean(passed) if len(passed) else 0.5, 1e-3, 1 - 1e-3))
        return Logistic(fields, empty.weights, float(np.log(rate / (1 - rate))))
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit(empty.features(obs, layout), passed)
    return Logistic(fields, tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0]))


@dataclass(frozen=True)
class RouterSettings:
    """The rule's knobs (see the module docstring)."""

    cost_weight: float = 0.5
    accept_at: float = 0.5
    max_calls: int = 2
    per_tier: int = 1
    repairs: int = 0


@dataclass(frozen=True)
class RouterModels:
    """The route model of each tier and the accept model."""

    route: tuple[Logistic, ...]
    accept: Logistic

    @property
    def answer_side(self) -> bool:
        return any(name in ANSWER_FIELDS for name in self.accept.fields)


class LearnedRouter(BatchRule):
    """Route by predicted hidden pass, verify, accept by the accept model, else escalate."""

    def __init__(
        self,
        env: gym.Env,
        models: RouterModels,
        settings: RouterSettings | None = None,
        name: str | None = None,
    ):
        super().__init__(env)
        if len(models.route) != self.actions.num_tiers:
            raise ValueError(
                f"the router has route models for {len(models.route)} tiers, the env has "
                f"{self.actions.num_tiers}"
            )
        missing = [f for f in models.accept.fields if f not in self.observations.fields]
        if missing:
            raise ValueError(f"this env's observation has no {missing}: fit the router on it")
        self.models = models
        self.settings = settings or RouterSettings()
        costs = np.asarray(occ_env_costs(env))
        self.relative_cost = costs / costs.max()
        self.name = name or ("Router" if models.answer_side else "Router(prompt only)")

    def act_batch(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return router_actions(
            self.models,
            self.settings,
            self.relative_cost,
            observations,
            masks,
            self.actions,
            self.observations,
        )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "settings": asdict(self.settings),
            "accept_fields": list(self.models.accept.fields),
        }


def occ_env_costs(env: gym.Env | gym.vector.VectorEnv) -> tuple[float, ...]:
    """Each tier's nominal cost of a fresh attempt, of a single or a native vector env."""
    from occ_gym.envs.code_env import occ_env

    if isinstance(env, gym.vector.VectorEnv):
        return tuple(occ_vector_env(env).template.tier_costs)
    return tuple(occ_env(env).tier_costs)


def router_actions(
    models: RouterModels,
    settings: RouterSettings,
    relative_cost: np.ndarray,
    obs: np.ndarray,
    masks: np.ndarray,
    actions: ActionLayout,
    layout: ObservationLayout,
) -> np.ndarray:
    """The router's action for each row of ``obs``."""
    tiers = actions.num_tiers
    seen = layout.decode(obs)
    has, verdict, tried, repair_round = (
        seen.has_candidate,
        seen.verdict,
        seen.attempts,
        seen.repair_round,
    )
    calls, steps_left, best_passed = tried.sum(axis=1), seen.steps_left, seen.best_passed
    passed = has & (verdict == PASSED)
    failed = has & (verdict == FAILED)
    unverified = has & ~passed & ~failed

    route = np.stack([m.probability(obs, layout) for m in models.route], axis=1)
    score = route - settings.cost_weight * relative_cost[None, :]
    open_tier = (tried < settings.per_tier) & masks[:, :tiers]
    score = np.where(open_tier, score, -np.inf)
    next_tier = np.argmax(score, axis=1)
    can_call = open_tier.any(axis=1) & (calls < settings.max_calls) & (steps_left >= 3)
    give_up = np.where(has & (passed | best_passed), actions.submit, actions.abstain)
    escalate = np.where(can_call, next_tier, give_up)
    accepted = has & ~unverified & (models.accept.probability(obs, layout) >= settings.accept_at)
    repair = (
        failed & (repair_round < settings.repairs) & masks[:, actions.repair] & (steps_left >= 3)
    )

    out = np.where(repair, actions.repair, escalate)
    out = np.where(accepted, actions.submit, out)
    out = np.where(unverified & masks[:, actions.verify], actions.verify, out)
    out = np.where(unverified & ~masks[:, actions.verify], actions.submit, out)
    first = np.where(open_tier.any(axis=1), next_tier, actions.abstain)
    out = np.where(~has, first, out)
    out = np.where(has & (steps_left <= 1), give_up, out)
    legal = masks[np.arange(len(out)), out]
    return np.where(legal, out, np.where(has, actions.submit, actions.abstain)).astype(np.int64)


@dataclass
class _Labelled:
    obs: list[np.ndarray] = field(default_factory=list)
    passed: list[np.ndarray] = field(default_factory=list)
    first: list[np.ndarray] = field(default_factory=list)


def router_data(
    venv: gym.vector.VectorEnv, episodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations just before a SUBMIT of the current candidate, whether it passed the hidden
    tests, and whether it was the episode's first (fresh, unverified or verified) candidate.

    Each episode writes one to three candidates with random tiers, verifies each (all but the
    last always, the last half the time), repairs a failed one with probability 0.3, and
    submits; an episode whose SUBMIT would hand in an earlier candidate is not labelled.
    """
    inner = occ_vector_env(venv)
    actions, layout = inner.action_layout, inner.observation_layout
    at = layout.fields
    n, tiers = inner.num_envs, actions.num_tiers
    rng = np.random.default_rng(seed)
    data = _Labelled()
    obs, _ = venv.reset(seed=seed)
    depth = rng.integers(1, 4, size=n)
    verify_last = rng.random(n) < 0.5
    before: np.ndarray | None = None
    finished = 0
    while finished < episodes:
        masks = inner.action_masks()
        seen = layout.decode(obs)
        has, verdict, steps_left = seen.has_candidate, seen.verdict, seen.steps_left
        calls = seen.attempts.sum(axis=1)
        weights = masks[:, :tiers] / np.maximum(masks[:, :tiers].sum(axis=1, keepdims=True), 1)
        tier = (weights.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        last = calls >= depth
        unverified = has & (verdict == VERDICTS.index("unverified"))
        out = np.where(has, actions.submit, tier)
        more = has & ~last & (steps_left > 2)
        out = np.where(more, tier, out)
        out = np.where(
            more & (verdict == FAILED) & masks[:, actions.repair] & (rng.random(n) < 0.3),
            actions.repair,
            out,
        )
        check = unverified & (~last | verify_last) & masks[:, actions.verify] & (steps_left > 1)
        out = np.where(check, actions.verify, out)
        fallback = np.where(has, actions.submit, actions.abstain)
        out = np.where(masks[np.arange(n), out], out, fallback)
        submitting = out == actions.submit
        best = obs[:, at["best_public_fraction"].start]
        current = obs[:, at["public_pass_fraction"].start]
        own = ~((verdict == FAILED) & (best > current + 1e-6))
        before = obs[submitting & own]
        first_candidate = (calls == 1) & (obs[:, at["context_length"].start] == 0)
        obs, _, terminated, truncated, info = venv.step(out)
        ended = terminated | truncated
        labelled = submitting & own & terminated
        data.obs.append(before[labelled[submitting & own]])
        data.passed.append(np.asarray(info.get("hidden_pass", ended))[labelled].astype(bool))
        data.first.append(first_candidate[labelled])
        finished += int(ended.sum())
        depth = np.where(ended, rng.integers(1, 4, size=n), depth)
        verify_last = np.where(ended, rng.random(n) < 0.5, verify_last)
    return np.concatenate(data.obs), np.concatenate(data.passed), np.concatenate(data.first)


def fit_router_models(
    obs: np.ndarray,
    passed: np.ndarray,
    first: np.ndarray,
    layout: ObservationLayout,
    answer_side: bool,
) -> RouterModels:
    """The route model per tier (first candidates of that tier) and the accept model (every
    verified candidate), from ``router_data``'s output."""
    at = layout.fields
    tier = np.argmax(obs[:, layout["candidate_tier"]], axis=1)
    verified = np.argmax(obs[:, layout["candidate_verdict"]], axis=1) != VERDICTS.index(
        "unverified"
    )
    route = tuple(
        fit_logistic(ROUTE_FIELDS, obs[first & (tier == k)], passed[first & (tier == k)], layout)
        for k in range(len(layout.tier_names))
    )
    fields: tuple[str, ...] = ACCEPT_FIELDS
    if answer_side:
        if "candidate_confidence" not in at:
            raise ValueError("this env shows no answer-side signals: fit with answer_side=False")
        fields = (*ACCEPT_FIELDS, *ANSWER_FIELDS)
    accept = fit_logistic(fields, obs[verified], passed[verified], layout)
    return RouterModels(route, accept)


@dataclass(frozen=True)
class RouterFit:
    """What ``tune_router`` found: the settings, their training return, the data it fitted."""

    settings: RouterSettings
    train_return: float
    answer_side: bool
    labelled: int
    settings_tried: int
    episodes: int
    seed: int
    seconds: float
    accept_weights: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tune_router(
    env_id: str,
    answer_side: bool = True,
    episodes: int = 2000,
    data_episodes: int = 50_000,
    seed: int = 0,
    split: str = "train",
    grid: Mapping[str, Sequence[Any]] | None = None,
    **env_kwargs: Any,
) -> tuple[RouterModels, RouterFit]:
    """Fit the router's models on ``data_episodes`` of ``split`` and pick the best setting of
    ``grid`` (``GRID`` by default; the knobs of ``RouterSettings``) by mean return over
    ``episodes`` of it (never the test split)."""
    if split == "test":
        raise ValueError("fit the router on a training split (train, fit or val), never on test")
    started = time.perf_counter()
    explore = gym.make_vec(
        env_id,
        num_envs=min(4096, data_episodes),
        split=split,
        autoreset_mode=AutoresetMode.SAME_STEP,
        **env_kwargs,
    )
    try:
        layout = occ_vector_env(explore).observation_layout
        data = router_data(explore, data_episodes, seed)
        models = fit_router_models(*data, layout, answer_side=answer_side)
    finally:
        explore.close()
    venv = gym.make_vec(env_id, num_envs=episodes, split=split, **env_kwargs)
    try:
        inner = occ_vector_env(venv)
        costs = np.asarray(occ_env_costs(venv))
        relative_cost = costs / costs.max()
        knobs = GRID if grid is None else grid
        settings_grid = [
            RouterSettings(**dict(zip(knobs, values, strict=True)))
            for values in itertools.product(*knobs.values())
        ]
        means = np.zeros(len(settings_grid))
        for index, settings in enumerate(settings_grid):
            act = partial(
                router_actions,
                models,
                settings,
                relative_cost,
                actions=inner.action_layout,
                layout=inner.observation_layout,
            )
            means[index] = play_batch(venv, act, seed).mean()
    finally:
        venv.close()
    best = int(np.argmax(means))
    names = [
        f"{name}[{i}]" if layout.fields[name].size > 1 else name
        for name in models.accept.fields
        for i in range(layout.fields[name].size)
    ]
    fit = RouterFit(
        settings=settings_grid[best],
        train_return=round(float(means[best]), 5),
        answer_side=answer_side,
        labelled=len(data[0]),
        settings_tried=len(settings_grid),
        episodes=episodes,
        seed=seed,
        seconds=round(time.perf_counter() - started, 1),
        accept_weights=dict(zip(names, (round(w, 4) for w in models.accept.weights), strict=True)),
    )
    return models, fit
