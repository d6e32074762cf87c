"""Helpers the tests share: crafted tiers with certain outcomes (so baselines can be checked
exactly), one-episode rollouts, the sandbox uids the tests' verifiers use, and the checks that
a sandbox left nothing behind."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np

import occ_gym  # noqa: F401  (registers the environments)
from occ_gym.resources import MODELS_DIR
from occ_gym.tiers.nano_card import matmul_parameters, read_card
from occ_gym.tiers.pool import PoolSpec, TierSpec
from occ_gym.verifier import Candidate, TestCase
from occ_gym.verifier.judge import Budget

SANDBOX_UID_BASE = 61_000
"""Child uids of the tests' sandboxes (a concurrent run elsewhere should pick another base)."""
SANDBOX_WORKERS = 2

NEVER = {"name": "never", "cost": 10.0, "easy_pass": 0.0, "hard_pass": 0.0, "hidden_falloff": 0.0}
"""A tier whose candidates always fail (cheapest)."""
ALWAYS = {
    "name": "always",
    "cost": 100.0,
    "easy_pass": 1.0,
    "hard_pass": 1.0,
    "hidden_falloff": 0.0,
}
"""A tier whose candidates always pass public and hidden tests."""
CERTAIN = {"hidden_pass_if_public_fail": 0.0}


def make_crafted_env(**kwargs) -> gym.Env:
    """OCC-CodeSim-v0 with a never-passing cheap tier and an always-passing dear one."""
    kwargs.setdefault("tiers", [ALWAYS, NEVER])
    kwargs.setdefault("simulation", CERTAIN)
    return gym.make("OCC-CodeSim-v0", **kwargs)


def rollout(env: gym.Env, policy, seed: int) -> tuple[list[int], float, dict]:
    """Actions, return and final info of one episode of ``policy``."""
    obs, _ = env.reset(seed=seed)
    actions, total, done = [], 0.0, False
    while not done:
        mask = env.unwrapped.action_masks()
        action, _ = policy.predict(obs, action_masks=mask)
        action = int(np.asarray(action))
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return actions, total, info


# ---------------------------------------------------------------- sandbox cleanliness

MARKER = f"/tmp/occ-gym-escaped-{os.getpid()}"
LEGIT = Candidate("def add_one(x):\n    return x + 1\n", "add_one", (TestCase((41,), 42),))


def sandbox_processes() -> list[int]:
    """Host pids of processes running as a sandbox child uid (none should outlive a verdict)."""
    uids = range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_WORKERS)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        if any(int(uid) in uids for uid in uid_line.split()[1:]):
            found.append(int(entry.name))
    return found


def server_tmp_entries(verifier) -> list[str]:
    """What is left in each sandbox's private /tmp, seen through /proc/PID/root."""
    entries = []
    for server in verifier.pool.servers:
        for child in descendants(server.pid):
            root = Path(f"/proc/{child}/root/tmp")
            try:
                entries += [f"{child}:{name}" for name in os.listdir(root)]
            except OSError:
                continue
    return entries


def descendants(pid: int | None) -> list[int]:
    if pid is None:
        return []
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            children = []
        found += [int(child) for child in children]
        frontier += [int(child) for child in children]
    return found


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def verify_then_check_clean(verifier, candidate: Candidate):
    """Verify ``candidate``; then every sandbox answers correctly and nothing is left behind."""
    fds_before = open_fds()
    verdict = verifier.verify(candidate)
    follow_up = verifier.verify_many([LEGIT] * len(verifier.pool.servers))
    assert all(v.passed for v in follow_up), [v.feedback() for v in follow_up]
    assert sandbox_processes() == []
    assert server_tmp_entries(verifier) == []
    assert open_fds() == fds_before
    assert not os.path.exists(MARKER)
    return verdict


# ---------------------------------------------------------------- host-side judging

BUDGET = Budget(cpu_s=1.0, wall_s=3.0)


def answer(payload: str | bytes, **overrides) -> dict:
    """A sandbox's answer as the host receives it."""
    raw = payload.encode() if isinstance(payload, str) else payload
    base = {
        "id": 1,
        "exit_code": 0,
        "signal": None,
        "timed_out": False,
        "cpu_exceeded": False,
        "over_limit": False,
        "wall_s": 0.01,
        "cpu_s": 0.01,
        "payload": base64.b64encode(raw).decode(),
    }
    return {**base, **overrides}


# ---------------------------------------------------------------- occ-gym serve


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SERVED_TIERS = ("cheap", "expensive")
"""The nano tiers ``served`` puts behind the server unless told otherwise."""


@contextlib.contextmanager
def served(
    *flags: str, tiers: tuple[str, ...] = SERVED_TIERS, port: int = 0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real ``occ-gym serve`` (on a free port unless given); yields its base URL and process."""
    port = port or free_port()
    command = [sys.executable, "-m", "occ_gym.cli", "serve", "--port", str(port), *flags]
    for tier in tiers:
        command += ["--tier", tier]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"occ-gym serve did not start: {process.stderr}") from None
                time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


def endpoint_tier(name: str, url: str, **settings) -> TierSpec:
    """An endpoint tier costed as the nano tier it serves (so FLOPs match a direct record)."""
    config, _, _ = read_card(MODELS_DIR / name)
    values = {
        "name": name,
        "kind": "openai",
        "base_url": url,
        "template": "nano",
        "temperature": 0.8,
        "max_tokens": 96,
        "parameters": matmul_parameters(config),
        "layers": config.n_layers,
        "d_model": config.d_model,
        **settings,
    }
    return TierSpec(**{"model": name, **values})


def pool_of(*specs: TierSpec) -> PoolSpec:
    return PoolSpec(tuple(specs), "flops", "test")
