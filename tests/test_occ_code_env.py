"""OCC-Code-v0: the env over the trained nano tiers, in replay and live mode."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from occ_gym.baselines import VerifierGuided
from occ_gym.cli import main as cli_main
from occ_gym.evaluation import run_episodes
from occ_gym.traces.record import RecordPlan, record

ACTIONS = ("ATTEMPT(cheap)", "VERIFY", "REPAIR", "ATTEMPT(expensive)", "VERIFY", "SUBMIT")


@pytest.fixture(scope="module")
def replay_env():
    env = gym.make("OCC-Code-v0", split="test")
    yield env
    env.close()


def test_occ_code_passes_both_env_checkers(replay_env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(replay_env.unwrapped, skip_render_check=True)
        sb3_check_env(replay_env.unwrapped, warn=True)


def test_tiers_are_the_nano_models_cheapest_first(replay_env):
    env = replay_env.unwrapped
    assert env.tier_names == ("cheap", "medium", "expensive")
    costs = [tier.nominal_cost for tier in env.tiers]
    assert costs == sorted(costs) and costs[2] >= 5 * costs[0]
    assert len(env.task_source) == len(env.tiers[0].traces.task_ids())


def _play(env: gym.Env, seed: int, task_index: int) -> list[tuple]:
    """Follow ACTIONS as far as the masks allow; record what each step returned."""
    obs, _ = env.reset(seed=seed, options={"task_index": task_index})
    trace = [tuple(np.round(obs, 6))]
    names = env.unwrapped.action_layout.names
    for wanted in ACTIONS:
        action = names.index(wanted)
        if not env.unwrapped.action_masks()[action]:
            continue
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((wanted, tuple(np.round(obs, 6)), round(float(reward), 9), info["verdict"]))
        if terminated or truncated:
            break
    return trace


def test_live_episode_runs_the_models_and_equals_replay(tmp_path, verifier):
    """Live mode over a table holding only the cheap tier's samples of two tasks: the medium
    and expensive attempts are written by the real models and run in the sandbox, and every
    step equals the replay of the shipped table."""
    plan = RecordPlan(split="test", tasks=2, tiers=("cheap",), repair_rounds=0, chunk_size=2)
    small = record(plan, tmp_path / "cheap-only.parquet", verifier=verifier)
    live = gym.make("OCC-Code-v0", split="test", mode="live", traces=str(small))
    replay = gym.make("OCC-Code-v0", split="test")
    try:
        for seed, task_index in ((0, 0), (1, 1), (5, 0)):
            assert _play(live, seed, task_index) == _play(replay, seed, task_index)
        written = sum(len(tier._written) for tier in live.unwrapped.tiers)
        assert written > 0, "live mode must have written attempts the table lacked"
    finally:
        live.close()
        replay.close()


def test_a_table_missing_tiers_is_refused_at_make_naming_it(tmp_path, verifier):
    """It used to load, then raise KeyError at the first attempt of a tier it lacks."""
    from occ_gym.traces.table import TraceError

    plan = RecordPlan(split="test", tasks=1, tiers=("cheap",), repair_rounds=0, chunk_size=1)
    small = record(plan, tmp_path / "one.parquet", verifier=verifier)
    with pytest.raises(TraceError, match=r"one\.parquet.*missing \['medium', 'expensive'\]"):
        gym.make("OCC-Code-v0", split="test", traces=str(small))


def test_bad_kwargs_fail_clearly():
    with pytest.raises(ValueError, match="mode"):
        gym.make("OCC-Code-v0", mode="imagined")
    with pytest.raises(ValueError, match="synthetic"):
        gym.make("OCC-Code-v0", tasks="humaneval")
    with pytest.raises(ValueError, match="apply to nano tiers"):
        gym.make("OCC-CodeSim-v0", mode="live")


def test_wall_time_adds_the_recorded_writing_and_verifying_times(replay_env):
    log = run_episodes(VerifierGuided(replay_env, "medium", max_tries=2), replay_env, 10, seed=0)
    assert (log["wall_ms"] > 0).all()
    inner = replay_env.unwrapped
    replay_env.reset(seed=3)
    attempt = inner.peek_attempt(0, 0, 0)
    replay_env.step(inner.action_layout.attempt(0))
    replay_env.step(inner.action_layout.verify)
    _, _, _, _, info = replay_env.step(inner.action_layout.abstain)
    assert info["wall_ms"] == pytest.approx(attempt.wall_ms + attempt.verify_ms)
    assert attempt.wall_ms > 0 and attempt.verify_ms > 0


def test_bench_runs_on_occ_code_with_the_shipped_lambda_sweep(tmp_path, capsys):
    argv = ["bench", "--env", "OCC-Code-v0", "--episodes", "20", "--seeds", "2"]
    argv += ["--tune-episodes", "32", "--planner-episodes", "2000", "--router-episodes", "2000"]
    assert cli_main([*argv, "--resamples", "100", "--out", str(tmp_path)]) == 0
    assert "FixedTier(expensive)" in (tmp_path / "leaderboard.md").read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    curve = next(c for c in results["curves"] if c["family"] == "MaskablePPO (shipped)")
    assert len(curve["points"]) == 5 and "MaskablePPO (shipped, λ=0.002)" in curve["points"]
    oracles = [e for e in results["entries"] if e["family"] == "HindsightOracle (upper bound)"]
    assert sorted(e["compute_penalty"] for e in oracles) == [0.00025, 0.0005, 0.001, 0.002, 0.004]


def test_readme_usage_example_runs(capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    usage = readme.split("## Usage", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert 'gym.make("OCC-Code-v1"' in usage
    exec(compile(usage, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip()


def test_v1_live_attempts_equal_its_recorded_ones(tmp_path, verifier):
    """OCC-Code-v1's tiers write the same code, verdicts and answer-side signals live (batch of
    one, its suite's temperature) as its recording did (batches of 64)."""
    plan = replace(RecordPlan.of("nano-v1", "test", 2, repair_rounds=0), tiers=("cheap",))
    small = record(plan, tmp_path / "v1-cheap-only.parquet", verifier=verifier)
    live = gym.make("OCC-Code-v1", split="test", mode="live", traces=str(small))
    replay = gym.make("OCC-Code-v1", split="test")
    actions = ("ATTEMPT(medium-filters)", "VERIFY", "REPAIR", "ATTEMPT(expensive)", "VERIFY")
    try:
        for seed, task_index in ((0, 0), (3, 1)):
            for env in (live, replay):
                env.reset(seed=seed, options={"task_index": task_index})
            for wanted in actions:
                action = live.unwrapped.action_layout.names.index(wanted)
                if not replay.unwrapped.action_masks()[action]:
                    continue
                ours, theirs = live.step(action), replay.step(action)
                assert np.allclose(ours[0], theirs[0], atol=1e-5), wanted
                assert ours[1] == pytest.approx(theirs[1]) and ours[3] == theirs[3]
                assert live.unwrapped.candidate.code == replay.unwrapped.candidate.code
    finally:
        live.close()
        replay.close()
