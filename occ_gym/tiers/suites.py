"""Nano suites: which trained tiers an env id uses, on which tasks, and how they were recorded.

A suite is one benchmark version's pool: ``OCC-Code-v0`` replays the three generalists on the
original task mix; ``OCC-Code-v1`` adds two medium-sized specialists, draws harder tasks with
plain public examples, records eight samples per tier at a higher temperature, and shows the
answer-side signals (confidence, length, agreement) in the observation. Torch-free: the env
reads suites without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from occ_gym.resources import TRACES_DIR
from occ_gym.tasks.synthetic import V0_TASKS, V1_TASKS, TaskMix
from occ_gym.tiers.nano_card import TEMPERATURE, TIER_NAMES


@dataclass(frozen=True)
class NanoSuite:
    """The tiers (cheapest first), tasks and recording settings of one env version."""

    name: str
    """The env's ``tiers=`` value."""
    tiers: tuple[str, ...]
    tasks: TaskMix
    samples: int
    """Fresh samples recorded per task and tier (the env rotates through them)."""
    repair_rounds: int
    """Repair rounds recorded after each failed sample."""
    temperature: float
    answer_signals: bool
    """Whether the observation shows the candidate's confidence, length and agreement."""
    traces_folder: str
    """Where the shipped tables live, under the package's trace assets."""

    def traces_path(self, split: str) -> Path:
        folder = TRACES_DIR / self.traces_folder if self.traces_folder else TRACES_DIR
        return folder / f"{split}.parquet"


V0_SUITE = NanoSuite(
    name="nano",
    tiers=TIER_NAMES,
    tasks=V0_TASKS,
    samples=4,
    repair_rounds=3,
    temperature=TEMPERATURE,
    answer_signals=False,
    traces_folder="",
)
V1_SUITE = NanoSuite(
    name="nano-v1",
    tiers=("cheap", "medium", "medium-filters", "medium-arithmetic", "expensive"),
    tasks=V1_TASKS,
    samples=8,
    repair_rounds=2,
    temperature=1.2,
    answer_signals=True,
    traces_folder="v1",
)
SUITES = {suite.name: suite for suite in (V0_SUITE, V1_SUITE)}


def suite_named(name: str) -> NanoSuite:
    if name not in SUITES:
        raise ValueError(f"unknown nano suite {name!r}; expected one of {sorted(SUITES)}")
    return SUITES[name]
