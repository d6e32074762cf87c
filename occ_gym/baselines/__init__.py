"""Baseline allocation rules, installed as ``occ_gym.baselines``; all share SB3's ``predict``."""

from __future__ import annotations

from occ_gym.baselines.base import BaselinePolicy, Policy
from occ_gym.baselines.best_of_n import BestOfNRule, BestRoute, tune_best_route
from occ_gym.baselines.cascade import CascadeRule, ThresholdCascade, tune_cascade
from occ_gym.baselines.fixed_tier import FixedTier
from occ_gym.baselines.heuristic_occ import HeuristicOCC
from occ_gym.baselines.hindsight_oracle import HindsightOracle
from occ_gym.baselines.planner import ObservablePlanner, fit_planner
from occ_gym.baselines.random_policy import RandomPolicy
from occ_gym.baselines.router import LearnedRouter, RouterSettings, tune_router
from occ_gym.baselines.verifier_guided import VerifierGuided

__all__ = [
    "BaselinePolicy",
    "BestOfNRule",
    "BestRoute",
    "CascadeRule",
    "FixedTier",
    "HeuristicOCC",
    "HindsightOracle",
    "LearnedRouter",
    "ObservablePlanner",
    "Policy",
    "RandomPolicy",
    "RouterSettings",
    "ThresholdCascade",
    "VerifierGuided",
    "fit_planner",
    "tune_best_route",
    "tune_cascade",
    "tune_router",
]
