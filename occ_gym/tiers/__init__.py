"""Tiers: who writes code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from occ_gym.tiers.base import DRAWS_PER_ATTEMPT, Tier
from occ_gym.tiers.simulated import (
    DEFAULT_SIMULATED_TIERS,
    SimulatedTier,
    SimulatedTierSpec,
    SimulationConfig,
    make_simulated_tiers,
)
from occ_gym.tiers.suites import SUITES


def make_tiers(
    tiers: str | Sequence[Mapping[str, Any]],
    tasks: str,
    split: str,
    mode: str = "replay",
    traces: str | None = None,
    simulation: Mapping[str, Any] | None = None,
    models: str | None = None,
) -> list[Tier]:
    """The env's tiers from its kwargs: simulated ones, or a suite of trained nano models."""
    if isinstance(tiers, str) and tiers in SUITES:
        suite = SUITES[tiers]
        if tasks != suite.tasks.prefix:
            raise ValueError(
                f"tiers={tiers!r} write code for tasks={suite.tasks.prefix!r}, not {tasks!r}"
            )
        if simulation is not None:
            raise ValueError(f"simulation overrides apply to simulated tiers, not tiers={tiers!r}")
        from occ_gym.tiers.nano_tier import make_nano_tiers

        return list(make_nano_tiers(split, mode, traces, models, suite))
    if mode != "replay" or traces is not None or models is not None:
        raise ValueError(f"mode, traces and models apply to nano tiers ({sorted(SUITES)}) only")
    return list(make_simulated_tiers(tiers, simulation))


__all__ = [
    "DEFAULT_SIMULATED_TIERS",
    "DRAWS_PER_ATTEMPT",
    "SimulatedTier",
    "SimulatedTierSpec",
    "SimulationConfig",
    "Tier",
    "make_simulated_tiers",
    "make_tiers",
]
