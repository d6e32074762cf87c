"""occ-gym: Gymnasium environments for learning compute allocation for code-generating agents.

Importing the package registers the environments (once, however often it is imported)::

    import gymnasium as gym
    import occ_gym

    env = gym.make("OCC-CodeSim-v0")
"""

from __future__ import annotations

from importlib.metadata import version

from gymnasium.envs.registration import register, registry

from occ_gym.attempt import Attempt, ErrorKind
from occ_gym.economics.broker import BrokerDecision, BrokerVerdict, ResourceBroker
from occ_gym.economics.ledger import CreditLedger, LedgerEntry
from occ_gym.economics.oracle import ImpactOracle, ScoreBreakdown
from occ_gym.envs.code_env import OCCCodeEnv

__version__ = version("occ-gym")
"""From the installed package's metadata (``pyproject.toml`` is the one place it is written)."""

ENV_IDS = ("OCC-Code-v0", "OCC-Code-v1", "OCC-CodeSim-v0")
"""Every environment id this package registers."""


def _register_environments() -> None:
    if "OCC-Code-v0" not in registry:
        register(
            id="OCC-Code-v0",
            entry_point="occ_gym.envs.code_env:OCCCodeEnv",
            vector_entry_point="occ_gym.envs.vector_env:OCCVectorEnv",
            kwargs={
                "tiers": "nano",
                "tasks": "synthetic",
                "verifier_cost": 20.0,
                "oracle": {"compute_penalty": 0.0005},
            },
        )
    if "OCC-Code-v1" not in registry:
        register(
            id="OCC-Code-v1",
            entry_point="occ_gym.envs.code_env:OCCCodeEnv",
            vector_entry_point="occ_gym.envs.vector_env:OCCVectorEnv",
            kwargs={
                "tiers": "nano-v1",
                "tasks": "synthetic-v1",
                "verifier_cost": 20.0,
                "oracle": {"compute_penalty": 0.0005},
            },
        )
    if "OCC-CodeSim-v0" not in registry:
        register(
            id="OCC-CodeSim-v0",
            entry_point="occ_gym.envs.code_env:OCCCodeEnv",
            vector_entry_point="occ_gym.envs.vector_env:OCCVectorEnv",
            kwargs={"tiers": "simulated", "tasks": "simulated"},
        )


_register_environments()

__all__ = [
    "ENV_IDS",
    "Attempt",
    "BrokerDecision",
    "BrokerVerdict",
    "CreditLedger",
    "ErrorKind",
    "ImpactOracle",
    "LedgerEntry",
    "OCCCodeEnv",
    "ResourceBroker",
    "ScoreBreakdown",
]
