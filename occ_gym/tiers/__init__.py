"""Tiers: who writes code."""

from __future__ import annotations

from occ_gym.tiers.base import DRAWS_PER_ATTEMPT, Tier
from occ_gym.tiers.simulated import (
    DEFAULT_SIMULATED_TIERS,
    SimulatedTier,
    SimulatedTierSpec,
    SimulationConfig,
    make_simulated_tiers,
)

__all__ = [
    "DEFAULT_SIMULATED_TIERS",
    "DRAWS_PER_ATTEMPT",
    "SimulatedTier",
    "SimulatedTierSpec",
    "SimulationConfig",
    "Tier",
    "make_simulated_tiers",
]
