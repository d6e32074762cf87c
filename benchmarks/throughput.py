"""Throughput against Gymnasium's CartPole, all in one process and one run.

    python benchmarks/throughput.py [--seconds 3] [--ppo-steps 50000] [--memory-steps 1000000]

Every speed is a ratio against a reference measured in the same process, alternately, so a busy
machine slows both sides:

- one env through ``gym.make``: OCC-Code-v0 (replay) and OCC-CodeSim-v0 against CartPole-v1,
  each driven by a fixed script (OCC: ATTEMPT(expensive), VERIFY, SUBMIT; CartPole: push left);
- the native vector env (``gym.make_vec``) at 64 and 1024 envs against CartPole's
  ``vector_entry_point`` env (CartPoleVectorEnv), and against ``SyncVectorEnv`` of our env;
- MaskablePPO training on the native vector env against SB3's PPO on CartPole (16 envs, the same
  network and rollout sizes, one torch thread);
- live mode: the nano tiers writing batched attempts (verified in the sandbox), and the
  verifier alone on reference solutions (executions per second);
- memory: the resident set size over ``--memory-steps`` steps of each mode, sampled every 10%,
  each mode in a fresh process (so the growth includes the replay caches filling).

Writes ``throughput.json`` and ``throughput.md`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import occ_gym
from occ_gym.envs.code_env import occ_env
from occ_gym.hashing import library_versions
from occ_gym.integrations.sb3 import make_sb3_vec_env
from occ_gym.tasks.synthetic import make_problem
from occ_gym.tiers.nano import TIER_NAMES, NanoModel
from occ_gym.tiers.nano_tier import NanoWriter
from occ_gym.tiers.writing import AttemptRequest, run_attempts
from occ_gym.verifier import SandboxConfig, Verifier

TARGETS = {
    "single_env": 1.0,
    "vector_env_1024": 0.5,
    "ppo_fps": 0.9,
    "rss_growth_mb": 20.0,
}
PPO_SETTINGS: dict[str, Any] = {
    "n_steps": 256,
    "batch_size": 256,
    "n_epochs": 10,
    "policy_kwargs": {"net_arch": [64, 64]},
}
N_PPO_ENVS = 16
WARM_UP = 30
"""Calls (of about 1000 steps) each stepper makes before it is timed."""


def rate(step: Callable[[], int], seconds: float) -> float:
    """Steps per second of calling ``step`` (which returns how many steps it took)."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += step()
    return done / (time.perf_counter() - started)


def alternate(
    ours: Callable[[], int], reference: Callable[[], int], seconds: float, rounds: int = 3
) -> dict[str, float]:
    """Median rates of ``ours`` and ``reference``, measured turn about."""
    a, b = [], []
    for _ in range(rounds):
        a.append(rate(ours, seconds / rounds))
        b.append(rate(reference, seconds / rounds))
    ours_rate, reference_rate = statistics.median(a), statistics.median(b)
    return {"ours": ours_rate, "reference": reference_rate, "ratio": ours_rate / reference_rate}


def cartpole_stepper() -> Callable[[], int]:
    env = gym.make("CartPole-v1")
    env.reset(seed=0)

    def step() -> int:
        for _ in range(1000):
            _, _, terminated, truncated, _ = env.step(0)
            if terminated or truncated:
                env.reset()
        return 1000

    return step


def occ_stepper(env_id: str, warm_up: int = WARM_UP) -> Callable[[], int]:
    env = gym.make(env_id, split="test")
    env.reset(seed=0)
    layout = env.unwrapped.action_layout
    script = [layout.num_tiers - 1, layout.verify, layout.submit]
    position = [0]

    def step() -> int:
        for _ in range(999):
            _, _, terminated, truncated, _ = env.step(script[position[0]])
            position[0] += 1
            if terminated or truncated:
                env.reset()
                position[0] = 0
        return 999

    for _ in range(warm_up):  # replay fills its per-task caches on first use
        step()
    return step


def vector_stepper(
    venv: gym.vector.VectorEnv, masks: Callable[[], np.ndarray] | None = None
) -> Callable[[], int]:
    """Steps ``venv`` 100 times: with ``masks``, the OCC script in every sub-env (VERIFY when
    legal, else SUBMIT when legal, else ATTEMPT(expensive)); without, action 0 everywhere."""
    n = venv.num_envs
    venv.reset(seed=0)
    zeros = np.zeros(n, dtype=np.int64)
    layout = occ_env(gym.make("OCC-CodeSim-v0")).action_layout  # the same for every OCC env
    expensive = layout.num_tiers - 1

    def step() -> int:
        for _ in range(100):
            if masks is None:
                venv.step(zeros)
                continue
            mask = masks()
            otherwise = np.where(mask[:, layout.submit], layout.submit, expensive)
            venv.step(np.where(mask[:, layout.verify], layout.verify, otherwise))
        return 100 * n

    return step


def single_env_speed(seconds: float) -> dict[str, Any]:
    return {
        env_id: alternate(occ_stepper(env_id), cartpole_stepper(), seconds)
        for env_id in occ_gym.ENV_IDS
    }


def vector_env_speed(seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for n in (64, 1024):
        cartpole = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
        for env_id in occ_gym.ENV_IDS:
            native = gym.make_vec(env_id, num_envs=n, split="test")
            results[f"{env_id} x{n}"] = alternate(
                vector_stepper(native, native.unwrapped.action_masks),
                vector_stepper(cartpole, None),
                seconds,
            )
        if n == 64:
            for env_id in occ_gym.ENV_IDS:
                sync = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", split="test")

                def sync_masks(sync: gym.vector.VectorEnv = sync) -> np.ndarray:
                    return np.stack(sync.call("action_masks"))

                native = gym.make_vec(env_id, num_envs=n, split="test")
                results[f"{env_id} x{n} native vs sync"] = alternate(
                    vector_stepper(native, native.unwrapped.action_masks),
                    vector_stepper(sync, sync_masks),
                    seconds,
                )
    return results


def ppo_speed(steps: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    results = {}
    occ = make_sb3_vec_env("OCC-Code-v0", N_PPO_ENVS, split="train")
    cartpole = make_vec_env("CartPole-v1", n_envs=N_PPO_ENVS, seed=0)
    for name, model in (
        (
            "MaskablePPO on OCC-Code-v0 (native vector env)",
            MaskablePPO("MlpPolicy", occ, seed=0, device="cpu", **PPO_SETTINGS),
        ),
        (
            "PPO on CartPole-v1 (DummyVecEnv)",
            PPO("MlpPolicy", cartpole, seed=0, device="cpu", **PPO_SETTINGS),
        ),
    ):
        started = time.perf_counter()
        model.learn(steps)
        results[name] = model.num_timesteps / (time.perf_counter() - started)
    ours, reference = results.values()
    return {"fps": results, "ratio": ours / reference, "steps": steps, "n_envs": N_PPO_ENVS}


def live_speed(attempts: int) -> dict[str, Any]:
    """Batched attempts per second of each nano tier (written, then verified in the sandbox),
    and verifier executions per second on reference solutions."""
    problems = [make_problem("test", i) for i in range(attempts)]
    results: dict[str, Any] = {"attempts_per_second": {}}
    with Verifier(SandboxConfig()) as verifier:
        candidates = [p.candidate(p.reference, hidden=True) for p in problems]
        verifier.verify_many(candidates[:8])  # warm the pool
        started = time.perf_counter()
        verifier.verify_many(candidates)
        results["verifier_executions_per_second"] = len(candidates) / (
            time.perf_counter() - started
        )
        for name in TIER_NAMES:
            model = NanoModel.load(name)
            requests = [AttemptRequest(problem, 0) for problem in problems]
            started = time.perf_counter()
            run_attempts(NanoWriter(model), requests, verifier)
            results["attempts_per_second"][name] = attempts / (time.perf_counter() - started)
    results["attempts"] = attempts
    return results


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


MEMORY_MODES = ("single env", "native x1024")


def memory_run(env_id: str, mode: str, steps: int) -> dict[str, Any]:
    """RSS during ``steps`` steps of one mode, in a process of its own (so memory that earlier
    measurements freed cannot hide growth); the baseline is taken after the first call (about
    1000 single-env steps, or 100 batch steps of 1024 envs), so the growth includes the replay
    caches filling as new tasks come up."""
    if mode == "single env":
        step = occ_stepper(env_id, warm_up=0)
    else:
        native = gym.make_vec(env_id, num_envs=1024, split="test")
        step = vector_stepper(native, native.unwrapped.action_masks)
    done = step()
    samples = [rss_mb()]
    while done < steps:
        done += step()
        if done >= len(samples) * steps / 10:
            samples.append(rss_mb())
    return {"rss_mb": samples, "growth_mb": samples[-1] - samples[0], "steps": done}


def memory_growth(steps: int) -> dict[str, Any]:
    """``memory_run`` of each env and mode, each in a fresh process."""
    context = multiprocessing.get_context("spawn")
    results = {}
    for env_id in occ_gym.ENV_IDS:
        for mode in MEMORY_MODES:
            with context.Pool(1) as pool:
                results[f"{env_id} {mode}"] = pool.apply(memory_run, (env_id, mode, steps))
    return results


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name, part in (
        ("single_env", lambda: single_env_speed(args.seconds)),
        ("vector_env", lambda: vector_env_speed(args.seconds)),
        ("ppo", lambda: ppo_speed(args.ppo_steps)),
        ("live", lambda: live_speed(args.live_attempts)),
        ("memory", lambda: memory_growth(args.memory_steps)),
    ):
        console.print(f"measuring {name} ...")
        results[name] = part()
    results["meta"] = {
        "command": " ".join(["python benchmarks/throughput.py", *args.argv]),
        "seconds": time.perf_counter() - started,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "versions": library_versions(),
    }
    return results


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(results: dict[str, Any]) -> str:
    single, vector, ppo = results["single_env"], results["vector_env"], results["ppo"]
    lines = [
        f"Measured by `{results['meta']['command']}` on {results['meta']['machine']} "
        f"({results['meta']['seconds']:.0f} s); each ratio is against a reference run in the same "
        "process, turn about.",
        "",
        "| measurement | ours (steps/s) | reference (steps/s) | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    for env_id, r in single.items():
        lines.append(
            f"| {env_id}, one env via gym.make vs CartPole-v1 | {r['ours']:,.0f} | "
            f"{r['reference']:,.0f} | {r['ratio']:.2f}x | >= {TARGETS['single_env']}x: "
            f"{verdict(r['ratio'] >= TARGETS['single_env'])} |"
        )
    for name, r in vector.items():
        if "sync" in name:
            target = "(native against SyncVectorEnv of the same env)"
            reference = "SyncVectorEnv"
        else:
            reference = "CartPoleVectorEnv"
            ok = r["ratio"] >= TARGETS["vector_env_1024"]
            target = f">= {TARGETS['vector_env_1024']}x: {verdict(ok)}" if "x1024" in name else ""
        lines.append(
            f"| {name}, native vector env vs {reference} | {r['ours']:,.0f} | "
            f"{r['reference']:,.0f} | {r['ratio']:.2f}x | {target} |"
        )
    ours_fps, reference_fps = ppo["fps"].values()
    lines.append(
        f"| MaskablePPO fps on the native env vs PPO on CartPole ({ppo['n_envs']} envs, "
        f"{ppo['steps']} steps) | {ours_fps:,.0f} | {reference_fps:,.0f} | {ppo['ratio']:.2f}x | "
        f">= {TARGETS['ppo_fps']}x: {verdict(ppo['ratio'] >= TARGETS['ppo_fps'])} |"
    )
    live = results["live"]
    lines += [
        "",
        f"Live mode ({live['attempts']} test problems, batched, each attempt verified on public "
        "and hidden tests in the sandbox): "
        + ", ".join(
            f"{name} {value:.1f} attempts/s" for name, value in live["attempts_per_second"].items()
        )
        + f"; the verifier alone {live['verifier_executions_per_second']:.0f} executions/s.",
        "",
        "| memory run | steps | RSS start (MB) | RSS end (MB) | growth (MB) | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in results["memory"].items():
        ok = r["growth_mb"] < TARGETS["rss_growth_mb"]
        lines.append(
            f"| {name} | {r['steps']:,} | {r['rss_mb'][0]:.0f} | {r['rss_mb'][-1]:.0f} | "
            f"{r['growth_mb']:+.1f} | < {TARGETS['rss_growth_mb']:.0f} MB: {verdict(ok)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per speed comparison")
    parser.add_argument("--ppo-steps", type=int, default=50_000)
    parser.add_argument("--live-attempts", type=int, default=64)
    parser.add_argument("--memory-steps", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    console = Console(width=160)
    results = run(args, console)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report(results)
    (args.out / "throughput.md").write_text(table)
    console.print(table)


if __name__ == "__main__":
    main()
