"""Shared fixtures (the helpers they use live in ``tests/helpers.py``)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import occ_gym  # noqa: F401  (registers the environments)
from tests.helpers import SANDBOX_UID_BASE, SANDBOX_WORKERS, make_crafted_env


@pytest.fixture
def crafted_env():
    env = make_crafted_env()
    yield env
    env.close()


@pytest.fixture
def sim_env():
    env = gym.make("OCC-CodeSim-v0")
    yield env
    env.close()


@pytest.fixture(scope="session")
def sandbox():
    """A verifier with the AST screen off, so hostile code reaches the sandbox itself."""
    from occ_gym.verifier import SandboxConfig, SandboxLimits, Verifier

    limits = SandboxLimits(cpu_s=1.5)
    config = SandboxConfig(workers=SANDBOX_WORKERS, limits=limits, child_uid_base=SANDBOX_UID_BASE)
    with Verifier(config, screen=None) as verifier:
        yield verifier


@pytest.fixture(scope="session")
def verifier():
    """A verifier with the default screen."""
    from occ_gym.verifier import SandboxConfig, Verifier

    with Verifier(SandboxConfig(workers=SANDBOX_WORKERS)) as default_verifier:
        yield default_verifier
