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


def _code_costs() -> dict:
    """The code envs' VERIFY cost and compute weight (a fresh dict for each id)."""
    return {"verifier_cost": 20.0, "oracle": {"compute_penalty": 0.0005}}


REGISTERED_KWARGS: dict[str, dict] = {
    "OCC-Code-v0": {"tiers": "nano", "tasks": "synthetic", **_code_costs()},
    "OCC-Code-v1": {"tiers": "nano-v1", "tasks": "synthetic-v1", **_code_costs()},
    "OCC-CodeSim-v0": {"tiers": "simulated", "tasks": "simulated"},
    # Any recorded pool: gym.make("OCC-Traces-v0", traces=DIR) (occ_gym.traces.recording).
    "OCC-Traces-v0": {"tiers": "recorded", "tasks": "recorded"},
}
"""Each environment id and the ``OCCCodeEnv`` keywords it is registered with."""
ENV_IDS = tuple(REGISTERED_KWARGS)
"""Every environment id this package registers."""


def _register_environments() -> None:
    for env_id, kwargs in REGISTERED_KWARGS.items():
        if env_id not in registry:
            register(
                id=env_id,
                entry_point="occ_gym.envs.code_env:OCCCodeEnv",
                vector_entry_point="occ_gym.envs.vector_env:OCCVectorEnv",
                kwargs=kwargs,
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
