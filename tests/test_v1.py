"""OCC-Code-v1 and the references its health is measured with: the tuned threshold cascade and
the observable-optimal planner (tiny budgets: seconds)."""

from __future__ import annotations

import itertools
import math

import gymnasium as gym
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from occ_gym.baselines.best_of_n import BestOfNRule, BestRoute, tune_best_route
from occ_gym.baselines.cascade import CascadeRule, ThresholdCascade, cascade_grid, tune_cascade
from occ_gym.baselines.heuristic_occ import HeuristicOCC
from occ_gym.baselines.planner import fit_planner
from occ_gym.baselines.router import GRID, LearnedRouter, tune_router
from occ_gym.tiers.suites import V0_SUITE, V1_SUITE
from occ_gym.traces.table import TRACE_VERSION, TraceRow, read_table, rows_to_table, write_table
from tests.test_robustness import play_mask_legal


@pytest.mark.parametrize("max_steps", [*range(2, 17), 32, 64])
def test_the_v1_mask_never_reaches_an_unrecorded_attempt(max_steps):
    env = gym.make("OCC-Code-v1", max_steps=max_steps)
    assert env.unwrapped.executor.repair_limit <= V1_SUITE.repair_rounds
    assert play_mask_legal(env, episodes=12, seed=max_steps) > 0
    env.close()


def test_v1_tables_hold_the_answer_side_signals():
    for split in ("train", "test"):
        table = read_table(V1_SUITE.traces_path(split))
        assert table.schema.metadata[b"occ_gym.trace_version"].decode() == TRACE_VERSION
        assert table.schema.metadata[b"occ_gym.suite"].decode() == "nano-v1"
        fresh = table.filter(pc.equal(table.column("repair_round"), 0))
        assert sorted(set(fresh.column("tier").to_pylist())) == sorted(V1_SUITE.tiers)
        assert set(fresh.column("sample").to_pylist()) == set(range(V1_SUITE.samples))
        mean = np.array(table.column("logprob_mean").to_pylist())
        least = np.array(table.column("logprob_min").to_pylist())
        assert np.isfinite(mean).all() and (mean <= 0).all() and (least <= mean).all()
        digests = table.column("public_outputs").to_pylist()
        assert sum(bool(d) for d in digests) > 0.5 * len(digests)
        assert all(task.startswith("synthetic-v1/") for task in table.column("task_id").to_pylist())


def test_a_version_2_table_reads_with_the_signals_not_recorded():
    path = V0_SUITE.traces_path("test")
    stored = pq.read_schema(path).metadata[b"occ_gym.trace_version"]
    shipped_v0 = read_table(path)
    assert stored == b"2" and shipped_v0.schema.metadata[b"occ_gym.upgraded_from"] == b"2"
    assert math.isnan(shipped_v0.column("logprob_mean")[0].as_py())
    assert shipped_v0.column("public_outputs")[0].as_py() == ""


def test_v1_shows_answer_side_signals_and_v0_keeps_its_layout():
    v0, v1 = gym.make("OCC-Code-v0"), gym.make("OCC-Code-v1")
    assert v0.observation_space.shape == (28,)
    fields = v1.unwrapped.observation_layout.fields
    for name in ("candidate_confidence", "candidate_min_confidence", "candidate_length"):
        assert name in fields and name not in v0.unwrapped.observation_layout.fields
    layout = v1.unwrapped.action_layout
    obs, _ = v1.reset(seed=3)
    assert obs[fields["candidate_confidence"].start] == 0.0
    obs, *_ = v1.step(layout.attempt("expensive"))
    assert 0.0 < obs[fields["candidate_confidence"].start] <= 1.0
    assert (
        obs[fields["candidate_min_confidence"].start] <= obs[fields["candidate_confidence"].start]
    )
    assert 0.0 < obs[fields["candidate_length"].start] <= 1.0


def test_agreement_is_seen_only_after_verifying_two_candidates_with_equal_outputs():
    env = gym.make("OCC-Code-v1")
    inner = env.unwrapped
    agrees = inner.observation_layout.fields["candidate_agrees"].start
    layout = inner.action_layout
    seen = False
    for seed in range(60):
        env.reset(seed=seed)
        obs, *_ = env.step(layout.attempt("expensive"))
        assert obs[agrees] == 0.0
        first = inner.candidate.public_outputs
        obs, *_ = env.step(layout.verify)
        assert obs[agrees] == 0.0  # nothing earlier to agree with
        obs, *_ = env.step(layout.attempt("expensive"))
        assert obs[agrees] == 0.0  # not run yet
        second = inner.candidate.public_outputs
        obs, *_ = env.step(layout.verify)
        assert obs[agrees] == float(bool(first) and first == second)
        seen |= obs[agrees] == 1.0
    assert seen


def play_checking_masks(policy, env: gym.Env, episodes: int) -> None:
    """Play ``episodes`` episodes of ``policy``, failing on any action the mask forbids."""
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            mask = env.unwrapped.action_masks()
            action = int(policy.predict(obs, action_masks=mask)[0])
            assert mask[action]
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated


def test_the_cascade_grid_and_a_tuned_cascade_run_on_v1():
    names = V1_SUITE.tiers
    grid = cascade_grid(names, confidence=True, max_order=1)
    assert len({rule.label for rule in grid}) == len(grid)
    fit = tune_cascade("OCC-Code-v1", episodes=64, max_order=1)
    assert fit.rules_tried == len(grid)
    env = gym.make("OCC-Code-v1", split="test")
    play_checking_masks(ThresholdCascade(env, fit.rule), env, episodes=20)
    with pytest.raises(ValueError, match="never on test"):
        tune_cascade("OCC-Code-v1", episodes=8, split="test")


def test_cascade_rules_refuse_what_cannot_run():
    with pytest.raises(ValueError, match="need verify"):
        CascadeRule(("cheap",), verify=False, repairs=1)
    with pytest.raises(ValueError, match="at least one tier"):
        CascadeRule(())
    env = gym.make("OCC-Code-v0")
    with pytest.raises(ValueError, match="no candidate confidence"):
        ThresholdCascade(env, CascadeRule(("cheap",), threshold=0.9))
    with pytest.raises(ValueError, match="unknown tiers"):
        ThresholdCascade(env, CascadeRule(("huge",)))


def test_the_planner_runs_on_v1_and_takes_only_legal_actions():
    rule = CascadeRule(("medium", "expensive"))
    planner, fit = fit_planner("OCC-Code-v1", rule, episodes=3000, batch=256, min_visits=5)
    assert fit.states > 10 and fit.transitions > fit.episodes
    play_checking_masks(planner, gym.make("OCC-Code-v1", split="test"), episodes=20)


# --- the planner is exact where its optimum is known by hand ------------------------------

COSTS = {"cheap": 10, "medium": 50, "expensive": 200}
"""Cost units of a fresh attempt in the hand-built table."""
OUTCOMES = {
    # task index: tier -> (passes public, passes hidden)
    0: {"cheap": (True, True), "medium": (False, False), "expensive": (True, True)},
    1: {"cheap": (True, False), "medium": (False, False), "expensive": (True, True)},
}
"""Task 0 (ints): the cheap tier solves it. Task 1 (text): the cheap tier passes the public
tests but fails the hidden ones, so only the expensive tier solves it: VERIFY cannot tell."""


def hand_built_table(tmp_path):
    rows = []
    for index, tiers in OUTCOMES.items():
        for tier, (public, hidden) in tiers.items():
            rows.append(
                TraceRow(
                    task_id=f"synthetic/train/{index}",
                    tier=tier,
                    kind="fresh",
                    sample=0,
                    repair_round=0,
                    context_tokens=50,
                    new_tokens=20,
                    flops=COSTS[tier] * 1_000_000,
                    cost=COSTS[tier],
                    wall_ms=1.0,
                    verify_ms=1.0,
                    code="    return xs\n",
                    public_passed=2 if public else 0,
                    public_total=2,
                    hidden_passed=10 if hidden else 3,
                    hidden_total=10,
                    exit_kind="ok" if public else "wrong_answer",
                    hidden_exit_kind="ok" if hidden else "wrong_answer",
                    failure_root="" if public else "wrong_answer",
                    error_kind="none" if public else "wrong_answer",
                    feedback="",
                )
            )
    path = tmp_path / "hand.parquet"
    write_table(rows_to_table(rows), path)
    return path


def best_by_brute_force(env: gym.Env, task: int, depth: int) -> float:
    """The best return of any mask-legal action sequence on ``task`` (it knows the task)."""
    layout = env.unwrapped.action_layout
    best = -np.inf
    for plan in itertools.product(range(layout.size), repeat=depth):
        env.reset(seed=0, options={"task_index": task})
        total = 0.0
        for action in plan:
            if not env.unwrapped.action_masks()[action]:
                total = -np.inf
                break
            _, reward, terminated, truncated, _ = env.step(action)
            total += reward
            if terminated or truncated:
                break
        else:
            continue
        best = max(best, total)
    return best


def test_the_planner_finds_the_known_optimum_of_a_hand_built_table(tmp_path):
    path = hand_built_table(tmp_path)
    kwargs = {"traces": str(path), "max_steps": 4}
    env = gym.make("OCC-Code-v0", split="train", **kwargs)
    layout = env.unwrapped.action_layout
    optimum = {task: best_by_brute_force(env, task, depth=3) for task in OUTCOMES}
    penalty = env.unwrapped.oracle.compute_penalty
    assert optimum[0] == pytest.approx(1 - penalty * COSTS["cheap"])
    assert optimum[1] == pytest.approx(1 - penalty * COSTS["expensive"])
    rule = CascadeRule(("cheap", "expensive"))  # what it explores around: not the optimum
    planner, fit = fit_planner("OCC-Code-v0", rule, episodes=20_000, batch=512, **kwargs)
    assert fit.start_value == pytest.approx(np.mean(list(optimum.values())), abs=1e-4)
    for task, first in ((0, "cheap"), (1, "expensive")):
        obs, _ = env.reset(seed=1, options={"task_index": task})
        actions, total, done = [], 0.0, False
        while not done:
            action = int(planner.predict(obs, action_masks=env.unwrapped.action_masks())[0])
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
        assert actions == [layout.attempt(first), layout.submit]
        assert total == pytest.approx(optimum[task])


def test_the_health_report_measures_the_shipped_tables():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "benchmark_health.py"
    spec = importlib.util.spec_from_file_location("benchmark_health", path)
    assert spec is not None and spec.loader is not None
    health = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(health)
    v0, v1 = health.suite_of("OCC-Code-v0"), health.suite_of("OCC-Code-v1")
    traces = health.trace_properties(v1)
    assert traces["test_tasks"] == 1000 and set(traces["tiers"]) == set(V1_SUITE.tiers)
    assert (
        0.0 < traces["no_dominant_tier_held_out"] < 1.0 and 0.0 < traces["no_dominant_tier"] < 1.0
    )
    assert traces["tiers"]["expensive"]["beats_most_expensive_on"] == 0.0
    assert health.signal_auc(v0) == {"recorded": False}
    signals = health.signal_auc(v1)
    for scores in signals["tiers"].values():
        assert 0.5 < scores["prompt_only"] < 1.0 and 0.5 < scores["with_answer_side"] <= 1.0


# --- the field's baselines: the learned router, AutoMix, HeuristicOCC that abstains -----------


def test_the_router_fits_on_v1_takes_only_legal_actions_and_refuses_test():
    small = {"accept_at": (0.5, 0.8), "max_calls": (1, 2)}
    models, fit = tune_router("OCC-Code-v1", episodes=64, data_episodes=2000, grid=small)
    assert fit.labelled > 500 and fit.settings_tried == 4
    assert "candidate_confidence" in fit.accept_weights and models.answer_side
    env = gym.make("OCC-Code-v1", split="test")
    play_checking_masks(LearnedRouter(env, models, fit.settings), env, episodes=20)
    prompt_only, _ = tune_router(
        "OCC-Code-v1", answer_side=False, episodes=16, data_episodes=500, grid=small
    )
    assert not prompt_only.answer_side
    assert LearnedRouter(env, prompt_only).name == "Router(prompt only)"
    with pytest.raises(ValueError, match="never on test"):
        tune_router("OCC-Code-v1", episodes=8, split="test")
    with pytest.raises(ValueError, match="no answer-side signals"):
        tune_router("OCC-Code-v0", episodes=8, data_episodes=200)


def test_the_router_learns_from_the_prompt_which_tier_solves_a_hand_built_task(tmp_path):
    """Task 0 (ints): cheap solves it. Task 1 (text): cheap passes the public tests and fails
    the hidden ones, only expensive solves it. The router must route by the prompt."""
    kwargs = {"traces": str(hand_built_table(tmp_path)), "max_steps": 4}
    models, fit = tune_router(
        "OCC-Code-v0", answer_side=False, episodes=64, data_episodes=4000, **kwargs
    )
    assert fit.settings_tried == len(list(itertools.product(*GRID.values())))
    env = gym.make("OCC-Code-v0", split="train", **kwargs)
    router = LearnedRouter(env, models, fit.settings)
    layout, inner = env.unwrapped.action_layout, env.unwrapped
    for task, tier in ((0, "cheap"), (1, "expensive")):
        obs, _ = env.reset(seed=1, options={"task_index": task})
        actions, total, done = [], 0.0, False
        while not done:
            action = int(router.predict(obs, action_masks=inner.action_masks())[0])
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
        assert actions == [layout.attempt(tier), layout.verify, layout.submit]
        cost = COSTS[tier] + inner.verifier_cost
        assert total == pytest.approx(1 - inner.oracle.compute_penalty * cost)


def test_automix_keeps_only_cascades_that_never_verify_and_heuristic_occ_may_abstain():
    fit = tune_cascade("OCC-Code-v1", episodes=32, max_order=1, verify=False)
    assert not fit.rule.verify
    grid = cascade_grid(V1_SUITE.tiers, confidence=True, max_order=1)
    assert fit.rules_tried == sum(not rule.verify for rule in grid)
    env = gym.make("OCC-Code-v1", split="test")
    heuristic = HeuristicOCC(env, on_exhausted="abstain")
    assert heuristic.name == "HeuristicOCC(abstain)"
    play_checking_masks(heuristic, env, episodes=20)


def test_best_route_picks_a_best_of_n_rule_per_prompt_bucket_and_plays_legally():
    fit = tune_best_route("OCC-Code-v1", episodes=200)
    assert fit.rules_tried == len(V1_SUITE.tiers) * 4 * 2 and set(fit.rules) == set(range(10))
    assert sum(fit.episodes_per_bucket.values()) == 200
    env = gym.make("OCC-Code-v1", split="test")
    play_checking_masks(BestRoute(env, fit.rules), env, episodes=20)
    with pytest.raises(ValueError, match="missing"):
        BestRoute(env, {0: BestOfNRule("cheap", 2)})
    with pytest.raises(ValueError, match="never on test"):
        tune_best_route("OCC-Code-v1", episodes=8, split="test")


def test_best_of_n_stops_at_the_first_public_pass_and_draws_at_most_n(tmp_path):
    """Hand-built table: cheap passes task 0's public tests, medium fails every task."""
    kwargs = {"traces": str(hand_built_table(tmp_path)), "max_steps": 8}
    env = gym.make("OCC-Code-v0", split="train", **kwargs)
    layout, inner = env.unwrapped.action_layout, env.unwrapped
    cheap, medium = layout.attempt("cheap"), layout.attempt("medium")
    for tier, n, expected in (
        ("cheap", 3, [cheap, layout.verify, layout.submit]),
        ("medium", 2, [medium, layout.verify, medium, layout.verify, layout.abstain]),
    ):
        obs, _ = env.reset(seed=0, options={"task_index": 0})
        policy = BestRoute(env, {b: BestOfNRule(tier, n) for b in range(10)})
        taken, done = [], False
        while not done:
            action = int(policy.predict(obs, action_masks=inner.action_masks())[0])
            taken.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        assert taken == expected
