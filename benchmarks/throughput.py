"""Throughput against Gymnasium's CartPole, all in one process and one run.

    python benchmarks/throughput.py [--seconds 3] [--ppo-steps 50000] [--memory-steps 1000000]

Every speed is a ratio against a reference measured in the same process, alternately, so a busy
machine slows both sides:

- one env through ``gym.make`` of every id against CartPole-v1, each driven by a fixed script
  (OCC: ATTEMPT(expensive), VERIFY, SUBMIT; CartPole: push left), and where its time goes: the
  microseconds of each call (reset, ATTEMPT, VERIFY, SUBMIT) beside one CartPole step;
- the native vector env (``gym.make_vec``) of every id at 64 and 1024 envs against CartPole's
  ``vector_entry_point`` env (CartPoleVectorEnv), and at 64 against ``SyncVectorEnv`` of our env;
- MaskablePPO training on the native vector env against SB3's PPO on CartPole (16 envs, the same
  network and rollout sizes, one torch thread);
- live mode on OCC-Code-v1 over a table of one task, so the attempts are written by the nano
  models and verified in the sandbox: one live env (an ATTEMPT per episode) against the native
  vector env of ``--live-envs`` live sub-envs (each step's attempts of a tier in one batch), in
  attempts per second per tier; and the verifier alone on reference solutions;
- start-up: ``gym.make`` and ``gym.make_vec(id, 1024)`` of every id, in a fresh process;
- memory: the resident set size over ``--memory-steps`` steps of each mode, sampled every 10%,
  each mode in a fresh process (so the growth includes the replay caches filling).

Writes ``throughput.json`` and ``throughput.md`` to ``--out``, prints the table, and ends with
one met / NOT met line per target.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
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
from occ_gym.envs.vector_env import occ_vector_env
from occ_gym.hashing import library_versions
from occ_gym.integrations.sb3 import make_sb3_vec_env
from occ_gym.tasks.synthetic import make_problem
from occ_gym.traces.record import RecordPlan, record
from occ_gym.verifier import SandboxConfig, Verifier

TARGETS = {
    "single_env": 1.0,
    "vector_env_1024": 0.5,
    "ppo_fps": 0.9,
    "live_batched": 5.0,
    "rss_growth_mb": 20.0,
}
LIVE_ENV = "OCC-Code-v1"
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
        env_id: {
            **alternate(occ_stepper(env_id), cartpole_stepper(), seconds),
            "calls_us": call_times(env_id),
        }
        for env_id in occ_gym.ENV_IDS
    }


def call_times(env_id: str, episodes: int = 20_000) -> dict[str, float]:
    """Median microseconds of each call of the script through ``gym.make`` (over blocks of
    1,000 episodes), and of one CartPole-v1 step measured alongside."""
    env = gym.make(env_id, split="test")
    layout = occ_env(env).action_layout
    calls = {
        "reset": env.reset,
        "ATTEMPT": lambda: env.step(layout.num_tiers - 1),
        "VERIFY": lambda: env.step(layout.verify),
        "SUBMIT": lambda: env.step(layout.submit),
    }
    cartpole = gym.make("CartPole-v1")
    cartpole.reset(seed=0)
    env.reset(seed=0)
    blocks: dict[str, list[float]] = {name: [] for name in [*calls, "CartPole step"]}
    for _ in range(episodes // 1000):
        spent = dict.fromkeys(blocks, 0.0)
        for _ in range(1000):
            for name, call in calls.items():
                started = time.perf_counter()
                call()
                spent[name] += time.perf_counter() - started
            started = time.perf_counter()
            _, _, terminated, truncated, _ = cartpole.step(0)
            spent["CartPole step"] += time.perf_counter() - started
            if terminated or truncated:
                cartpole.reset()
        for name, total in spent.items():
            blocks[name].append(total / 1000 * 1e6)
    return {name: statistics.median(values) for name, values in blocks.items()}


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
    """MaskablePPO's fps on each nano env's native vector env against PPO on CartPole, each
    pair run turn about."""
    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    for env_id in ("OCC-Code-v0", "OCC-Code-v1"):
        occ = make_sb3_vec_env(env_id, N_PPO_ENVS, split="train")
        cartpole = make_vec_env("CartPole-v1", n_envs=N_PPO_ENVS, seed=0)
        fps = {}
        for name, model in (
            (
                f"MaskablePPO on {env_id} (native vector env)",
                MaskablePPO("MlpPolicy", occ, seed=0, device="cpu", **PPO_SETTINGS),
            ),
            (
                "PPO on CartPole-v1 (DummyVecEnv)",
                PPO("MlpPolicy", cartpole, seed=0, device="cpu", **PPO_SETTINGS),
            ),
        ):
            started = time.perf_counter()
            model.learn(steps)
            fps[name] = model.num_timesteps / (time.perf_counter() - started)
        ours, reference = fps.values()
        results[env_id] = {"fps": fps, "ratio": ours / reference}
    return {"envs": results, "steps": steps, "n_envs": N_PPO_ENVS}


def live_speed(single_attempts: int, envs: int) -> dict[str, Any]:
    """Live attempts per second of each OCC-Code-v1 tier (written by its model, verified on
    public and hidden tests in the sandbox): one live env making one ATTEMPT per episode,
    against the native vector env of ``envs`` live sub-envs attempting together; and verifier
    executions per second on reference solutions."""
    results: dict[str, Any] = {"single": {}, "batched": {}, "ratio": {}}
    with tempfile.TemporaryDirectory() as folder:
        # Live mode plays the tasks its table covers: one sample of one tier on 4 x envs
        # tasks, so every attempt of the other tiers is written (the first tier is measured
        # over a table of the last).
        plan = RecordPlan.of("nano-v1", "test", 4 * envs, samples=1, repair_rounds=0)
        tables = {
            tier: record(replace(plan, tiers=(tier,)), Path(folder) / f"{tier}.parquet")
            for tier in (plan.tiers[0], plan.tiers[-1])
        }
        for tier, name in enumerate(plan.tiers):
            table = tables[plan.tiers[-1] if tier == 0 else plan.tiers[0]]
            kwargs = {"split": "test", "mode": "live", "traces": str(table), "max_steps": 2}
            single = gym.make(LIVE_ENV, **kwargs)
            venv = gym.make_vec(LIVE_ENV, num_envs=envs, **kwargs)
            try:
                results["single"][name] = live_rate(
                    single, partial(single_attempt, single, tier), single_attempts
                )
                results["batched"][name] = live_rate(
                    venv, partial(batched_attempts, venv, tier), 2 * envs
                )
            finally:
                single.close()
                venv.close()
            results["ratio"][name] = results["batched"][name] / results["single"][name]
    problems = [make_problem("test", i) for i in range(64)]
    with Verifier(SandboxConfig()) as verifier:
        candidates = [p.candidate(p.reference, hidden=True) for p in problems]
        verifier.verify_many(candidates[:8])  # warm the pool
        started = time.perf_counter()
        verifier.verify_many(candidates)
        results["verifier_executions_per_second"] = len(candidates) / (
            time.perf_counter() - started
        )
    results["envs"] = envs
    return results


def written(env: Any) -> int:
    """Attempts the env's live tiers have written so far."""
    inner = env.unwrapped
    template = getattr(inner, "template", inner)
    return sum(len(tier._written) for tier in template.tiers)


def live_rate(env: Any, attempt: Callable[[], None], attempts: int) -> float:
    """Written attempts per second of calling ``attempt`` until ``attempts`` were written
    (after one warm-up call that loads the model and starts the sandbox)."""
    attempt()
    first, started = written(env), time.perf_counter()
    while written(env) - first < attempts:
        attempt()
    return (written(env) - first) / (time.perf_counter() - started)


def single_attempt(env: gym.Env, tier: int) -> None:
    env.reset()
    env.step(tier)
    env.step(occ_env(env).action_layout.abstain)


def batched_attempts(venv: gym.vector.VectorEnv, tier: int) -> None:
    layout = occ_vector_env(venv).action_layout
    venv.reset()
    venv.step(np.full(venv.num_envs, tier))
    venv.step(np.full(venv.num_envs, layout.abstain))


STARTUP_SCRIPT = """
import json, sys, time
started = time.perf_counter()
import gymnasium as gym, occ_gym
imported = time.perf_counter()
gym.make(sys.argv[1])
made = time.perf_counter()
gym.make_vec(sys.argv[1], num_envs=1024)
print(json.dumps({"import_s": imported - started, "make_s": made - imported,
                  "make_vec_1024_s": time.perf_counter() - made}))
"""


def startup() -> dict[str, Any]:
    """Seconds to import occ-gym, then ``gym.make(id)``, then ``gym.make_vec(id, 1024)``, in a
    fresh process per id."""
    results = {}
    for env_id in occ_gym.ENV_IDS:
        done = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", STARTUP_SCRIPT, env_id],
            capture_output=True,
            text=True,
            check=True,
        )
        results[env_id] = json.loads(done.stdout)
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
        ("live", lambda: live_speed(args.live_attempts, args.live_envs)),
        ("startup", startup),
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
    live, targets = results["live"], []
    lines = [
        f"Measured by `{results['meta']['command']}` on {results['meta']['machine']} "
        f"({results['meta']['seconds']:.0f} s); each ratio is against a reference run in the same "
        "process, turn about.",
        "",
        "| measurement | ours (steps/s) | reference (steps/s) | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    for env_id, r in single.items():
        ok = r["ratio"] >= TARGETS["single_env"]
        name = f"{env_id}: one env via gym.make >= {TARGETS['single_env']}x CartPole-v1"
        targets.append((name, ok))
        lines.append(
            f"| {env_id}, one env via gym.make vs CartPole-v1 | {r['ours']:,.0f} | "
            f"{r['reference']:,.0f} | {r['ratio']:.2f}x | >= {TARGETS['single_env']}x: "
            f"{verdict(ok)} |"
        )
    for name, r in vector.items():
        if "sync" in name:
            target = "(native against SyncVectorEnv of the same env)"
            reference = "SyncVectorEnv"
        else:
            reference = "CartPoleVectorEnv"
            ok = r["ratio"] >= TARGETS["vector_env_1024"]
            target = ""
            if "x1024" in name:
                target = f">= {TARGETS['vector_env_1024']}x: {verdict(ok)}"
                targets.append((f"{name}: native vector env >= 0.5x CartPoleVectorEnv", ok))
        lines.append(
            f"| {name}, native vector env vs {reference} | {r['ours']:,.0f} | "
            f"{r['reference']:,.0f} | {r['ratio']:.2f}x | {target} |"
        )
    for env_id, r in ppo["envs"].items():
        ours_fps, reference_fps = r["fps"].values()
        ok = r["ratio"] >= TARGETS["ppo_fps"]
        targets.append((f"{env_id}: MaskablePPO fps >= {TARGETS['ppo_fps']}x PPO on CartPole", ok))
        lines.append(
            f"| MaskablePPO fps on {env_id}'s native env vs PPO on CartPole ({ppo['n_envs']} "
            f"envs, {ppo['steps']} steps) | {ours_fps:,.0f} | {reference_fps:,.0f} | "
            f"{r['ratio']:.2f}x | >= {TARGETS['ppo_fps']}x: {verdict(ok)} |"
        )
    lines += [
        "",
        "Where one env's time goes: microseconds per call through `gym.make` (median of blocks "
        "of 1,000 scripted episodes), beside one CartPole-v1 step timed in the same loop.",
        "",
        "| env | reset | ATTEMPT | VERIFY | SUBMIT | per step, reset included | CartPole step |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for env_id, r in single.items():
        calls = r["calls_us"]
        per_step = (calls["reset"] + calls["ATTEMPT"] + calls["VERIFY"] + calls["SUBMIT"]) / 3
        lines.append(
            f"| {env_id} | {calls['reset']:.1f} | {calls['ATTEMPT']:.1f} | {calls['VERIFY']:.1f} | "
            f"{calls['SUBMIT']:.1f} | {per_step:.1f} | {calls['CartPole step']:.1f} |"
        )
    lines += [
        "",
        f"Live mode on {LIVE_ENV} (attempts written by the nano models and verified on public "
        "and hidden tests in the sandbox): one live env against the native vector env of "
        f"{live['envs']} live sub-envs; the verifier alone runs "
        f"{live['verifier_executions_per_second']:.0f} executions/s.",
        "",
        "| tier | one env (attempts/s) | batched (attempts/s) | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name, ratio in live["ratio"].items():
        ok = ratio >= TARGETS["live_batched"]
        targets.append((f"live {name}: batched >= {TARGETS['live_batched']:.0f}x one env", ok))
        lines.append(
            f"| {name} | {live['single'][name]:.1f} | {live['batched'][name]:.1f} | "
            f"{ratio:.1f}x | >= {TARGETS['live_batched']:.0f}x: {verdict(ok)} |"
        )
    lines += [
        "",
        "Start-up in a fresh process (seconds): importing occ-gym, then `gym.make(id)`, then "
        "`gym.make_vec(id, num_envs=1024)`.",
        "",
        "| env | import | gym.make | gym.make_vec x1024 |",
        "|---|---:|---:|---:|",
    ]
    for env_id, r in results["startup"].items():
        lines.append(
            f"| {env_id} | {r['import_s']:.2f} | {r['make_s']:.2f} | {r['make_vec_1024_s']:.2f} |"
        )
    lines += [
        "",
        "| memory run | steps | RSS start (MB) | RSS end (MB) | growth (MB) | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in results["memory"].items():
        ok = r["growth_mb"] < TARGETS["rss_growth_mb"]
        targets.append((f"{name}: RSS growth < {TARGETS['rss_growth_mb']:.0f} MB", ok))
        lines.append(
            f"| {name} | {r['steps']:,} | {r['rss_mb'][0]:.0f} | {r['rss_mb'][-1]:.0f} | "
            f"{r['growth_mb']:+.1f} | < {TARGETS['rss_growth_mb']:.0f} MB: {verdict(ok)} |"
        )
    met = sum(ok for _, ok in targets)
    lines += ["", f"Targets: {met} of {len(targets)} met.", ""]
    lines += [f"- {verdict(ok)}: {name}" for name, ok in targets]
    return "\n".join(lines) + "\n"


def headline(results: dict[str, Any]) -> str:
    """The README's one performance line (``benchmarks/update_readme.py`` puts it there)."""
    single, vector = results["single_env"], results["vector_env"]
    v1 = "OCC-Code-v1"
    return (
        f"One `{v1}` env via `gym.make` runs {single[v1]['ours']:,.0f} steps/s "
        f"({single[v1]['ratio']:.2f}x CartPole-v1), the native vector env at 1,024 sub-envs "
        f"{vector[f'{v1} x1024']['ours'] / 1e6:.1f}M steps/s "
        f"({vector[f'{v1} x1024']['ratio']:.2f}x CartPoleVectorEnv), on "
        f"{results['meta']['machine']} ([performance](docs/performance.md), generated by "
        "`make throughput`).\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per speed comparison")
    parser.add_argument("--ppo-steps", type=int, default=50_000)
    parser.add_argument(
        "--live-attempts", type=int, default=16, help="per tier, written by one live env"
    )
    parser.add_argument("--live-envs", type=int, default=64, help="live sub-envs batched")
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
    (args.out / "throughput_headline.md").write_text(headline(results))
    console.print(table)


if __name__ == "__main__":
    main()
