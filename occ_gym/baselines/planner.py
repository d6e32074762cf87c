"""The observable-optimal planner: the best policy of the empirical MDP over what the
observation shows, solved exactly by backward induction.

The observation is cut into a discrete state (``Discretiser``): the prompt's bucket (text or
ints, how many clauses), which tiers were tried, the current candidate's tier, verdict (and
whether it passed none, some or all public tests), repair round and confidence bucket, whether
it agrees with an earlier one, whether a verified candidate passed, and the steps left.
Episodes on the training split, played by the tuned cascade with a share of random legal
actions, give every (state, action) its observed reward and next states; since every step uses
one of the episode's steps, the states form levels by steps left and backward induction gives
each state's optimal value under that empirical model.

How exact: optimal among policies of the discretised observation, for the empirical model of
the training episodes. It is exact where the discretised observation is Markov and every
(state, action) was seen (``tests`` check a hand-built table whose optimum is known); where a
pair was seen fewer than ``min_visits`` times the planner does not trust it and, in a state
with no trusted action, plays the cascade it explored around.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from occ_gym.baselines.base import BatchRule
from occ_gym.baselines.cascade import CascadeRule, ThresholdCascade, cascade_actions
from occ_gym.envs.layout import ObservationLayout
from occ_gym.envs.vector_env import occ_vector_env

CONFIDENCE_EDGES = (0.85, 0.93)
"""Edges of the confidence buckets (low, middle, high) on envs that show confidence."""


@dataclass(frozen=True)
class Discretiser:
    """Observation -> integer state. Each part is a small integer; the code is mixed-radix."""

    confidence_edges: tuple[float, ...] = CONFIDENCE_EDGES
    attempt_cap: int = 1
    """Fresh attempts per tier are counted up to this (1: tried or not)."""

    def parts(self, obs: np.ndarray, layout: ObservationLayout) -> list[tuple[np.ndarray, int]]:
        """(values, radix) of every part of the state, for a batch of observations."""
        at, features = layout.fields, obs[:, layout["prompt_features"]]
        names = layout.feature_names
        parts: list[tuple[np.ndarray, int]] = []
        if "text_domain" in names:
            parts.append(((features[:, names.index("text_domain")] > 0.5).astype(int), 2))
        if "clauses" in names:
            clauses = np.rint(features[:, names.index("clauses")] * 4).astype(int)
            parts.append((np.clip(clauses, 0, 4), 5))
        seen = layout.decode(obs)
        tried = np.minimum(seen.attempts, self.attempt_cap)
        parts.extend((tried[:, k], self.attempt_cap + 1) for k in range(tried.shape[1]))
        has = seen.has_candidate
        tier = np.where(has, np.argmax(obs[:, layout["candidate_tier"]], axis=1) + 1, 0)
        parts.append((tier, len(layout.tier_names) + 1))
        parts.append((seen.verdict, 3))
        partial = obs[:, at["public_pass_fraction"].start]
        parts.append((np.where(partial >= 1.0 - 1e-6, 2, (partial > 0).astype(int)), 3))
        parts.append((seen.repair_round, layout.max_repair_rounds + 1))
        if "candidate_confidence" in at:
            confidence = obs[:, at["candidate_confidence"].start]
            buckets = np.searchsorted(np.array(self.confidence_edges), confidence, side="right")
            parts.append((np.where(has, buckets, 0), len(self.confidence_edges) + 1))
            parts.append(((obs[:, at["candidate_agrees"].start] > 0.5).astype(int), 2))
        parts.append((seen.best_passed.astype(int), 2))
        parts.append((seen.steps_left, layout.max_steps + 1))
        return parts

    def codes(self, obs: np.ndarray, layout: ObservationLayout) -> np.ndarray:
        code = np.zeros(len(obs), dtype=np.int64)
        for values, radix in self.parts(obs, layout):
            code = code * radix + values
        return code


@dataclass(frozen=True)
class QTable:
    """Backward induction's result: per state, each action's value and how often it was seen."""

    states: np.ndarray
    """Sorted state codes."""
    values: np.ndarray
    """(states, actions): Q, nan where the action was never taken there."""
    visits: np.ndarray
    """(states, actions): how many training steps took it."""
    state_values: np.ndarray
    """V(s): the best trusted Q (the most visited action's where none is trusted)."""

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row index, found) for each state code."""
        index = np.clip(np.searchsorted(self.states, codes), 0, max(0, len(self.states) - 1))
        found = (len(self.states) > 0) & (self.states[index] == codes)
        return index, found


def solve(
    states: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_states: np.ndarray,
    done: np.ndarray,
    steps_left: np.ndarray,
    num_actions: int,
    min_visits: int,
) -> QTable:
    """Exact backward induction on the empirical MDP of the transitions given: level by level
    from the last step, Q(s, a) = mean over its transitions of r + V(s'), and V(s) = the best Q
    among the actions seen at least ``min_visits`` times there (any action, if none was)."""
    unique = np.unique(states)
    row = np.searchsorted(unique, states)
    values = np.full((len(unique), num_actions), np.nan)
    visits = np.zeros((len(unique), num_actions), dtype=np.int64)
    np.add.at(visits, (row, actions), 1)
    state_value = np.zeros(len(unique))
    level_of_state = np.zeros(len(unique), dtype=np.int64)
    level_of_state[row] = steps_left
    for level in np.unique(steps_left):  # ascending: a next state has one step fewer
        here = steps_left == level
        target = np.zeros(int(here.sum()))
        live = ~done[here]
        nxt = next_states[here][live]
        index = np.clip(np.searchsorted(unique, nxt), 0, len(unique) - 1)
        seen = unique[index] == nxt
        target[live] = np.where(seen, state_value[index], 0.0)
        total = np.zeros((len(unique), num_actions))
        np.add.at(total, (row[here], actions[here]), rewards[here] + target)
        rows = np.flatnonzero(level_of_state == level)
        with np.errstate(invalid="ignore", divide="ignore"):
            q = total[rows] / visits[rows]
        q[visits[rows] == 0] = np.nan
        values[rows] = q
        trusted = np.where(visits[rows] >= min_visits, q, np.nan)
        fallback = np.take_along_axis(q, np.argmax(visits[rows], axis=1)[:, None], axis=1)[:, 0]
        with warnings.catch_warnings():  # a state with no trusted action has an all-nan row
            warnings.simplefilter("ignore", RuntimeWarning)
            best = np.nanmax(trusted, axis=1)
        state_value[rows] = np.where(np.isnan(best), fallback, best)
    return QTable(unique, values, visits, state_value)


class ObservablePlanner(BatchRule):
    """Plays the Q-table's best trusted legal action; the cascade where it trusts none."""

    def __init__(
        self,
        env: gym.Env,
        table: QTable,
        fallback: CascadeRule,
        min_visits: int,
        discretiser: Discretiser | None = None,
        name: str = "ObservablePlanner",
    ):
        super().__init__(env)
        self.table = table
        self.min_visits = min_visits
        self.discretiser = discretiser or Discretiser()
        self.fallback = ThresholdCascade(env, fallback)
        self.name = name

    def act_batch(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return planned_actions(self, observations, masks)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "states": len(self.table.states),
            "min_visits": self.min_visits,
            "fallback": asdict(self.fallback.rule),
        }


def planned_actions(planner: ObservablePlanner, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    fallback = planner.fallback.act_batch(obs, masks)
    codes = planner.discretiser.codes(obs, planner.observations)
    index, found = planner.table.lookup(codes)
    q = planner.table.values[index]
    trusted = masks & (planner.table.visits[index] >= planner.min_visits) & ~np.isnan(q)
    scored = np.where(trusted, q, -np.inf)
    best = np.argmax(scored, axis=1)
    use = found & trusted.any(axis=1)
    return np.where(use, best, fallback).astype(np.int64)


@dataclass(frozen=True)
class PlannerFit:
    """How the planner was fitted, and what its model predicts on the training episodes."""

    episodes: int
    epsilon: float
    min_visits: int
    seed: int
    states: int
    transitions: int
    start_value: float
    """The empirical model's optimal value of a start state, averaged over the episodes."""
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_planner(
    env_id: str,
    fallback: CascadeRule,
    episodes: int = 1_000_000,
    epsilon: float = 0.3,
    min_visits: int = 10,
    seed: int = 0,
    split: str = "train",
    batch: int = 4096,
    discretiser: Discretiser | None = None,
    **env_kwargs: Any,
) -> tuple[ObservablePlanner, PlannerFit]:
    """Explore ``split`` around ``fallback`` (each step a random legal action with probability
    ``epsilon``), solve the empirical MDP, and return the planner for an env of ``env_id``."""
    if split == "test":
        raise ValueError("fit the planner on a training split (train, fit or val), never on test")
    started = time.perf_counter()
    discretiser = discretiser or Discretiser()
    venv = gym.make_vec(
        env_id, num_envs=batch, split=split, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs
    )
    inner = occ_vector_env(venv)
    actions, layout = inner.action_layout, inner.observation_layout
    order = np.array([actions.tier_index(t) for t in fallback.order] + [-1])
    rng = np.random.default_rng(seed)
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("s", "a", "r", "s2", "d", "left", "episode")
    }
    starts: list[np.ndarray] = []
    try:
        obs, _ = venv.reset(seed=seed)
        finished = 0
        fresh = np.ones(batch, dtype=bool)
        episode = np.arange(batch)  # a global id of each sub-env's current episode
        while finished < episodes:
            masks = inner.action_masks()
            codes = discretiser.codes(obs, layout)
            starts.append(codes[fresh])
            planned = cascade_actions(fallback, order, obs, masks, actions, layout)
            weights = masks / masks.sum(axis=1, keepdims=True)
            random = (weights.cumsum(axis=1) > rng.random((batch, 1))).argmax(axis=1)
            chosen = np.where(rng.random(batch) < epsilon, random, planned)
            next_obs, reward, terminated, truncated, _ = venv.step(chosen)
            fresh = terminated | truncated
            columns["s"].append(codes)
            columns["a"].append(chosen)
            columns["r"].append(reward)
            # An ended episode's next observation is the next episode's first: done masks it.
            columns["s2"].append(discretiser.codes(next_obs, layout))
            columns["d"].append(fresh)
            columns["left"].append(layout.decode(obs).steps_left)
            columns["episode"].append(episode.copy())
            finished += int(fresh.sum())
            episode = np.where(fresh, episode.max() + 1 + np.cumsum(fresh), episode)
            obs = next_obs
    finally:
        venv.close()
    data = {k: np.concatenate(v) for k, v in columns.items()}
    # Episodes still running when collection stopped would end in unseen states worth 0.
    complete = ~np.isin(data["episode"], episode[~fresh])
    data = {k: v[complete] for k, v in data.items()}
    table = solve(
        data["s"],
        data["a"],
        data["r"],
        data["s2"],
        data["d"],
        data["left"],
        actions.size,
        min_visits,
    )
    index, found = table.lookup(np.concatenate(starts))
    start_value = float(np.mean(table.state_values[index][found]))
    env = gym.make(env_id, split=split, **env_kwargs)
    planner = ObservablePlanner(env, table, fallback, min_visits, discretiser)
    env.close()
    fit = PlannerFit(
        episodes=finished,
        epsilon=epsilon,
        min_visits=min_visits,
        seed=seed,
        states=len(table.states),
        transitions=len(data["s"]),
        start_value=round(start_value, 5),
        seconds=round(time.perf_counter() - started, 1),
    )
    return planner, fit
