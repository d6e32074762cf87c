"""OCCCodeEnv: spaces, masks, rewards, determinism, pickling, vectorisation, bad input."""

from __future__ import annotations

import math
import pickle
import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import occ_gym
from occ_gym import OCCCodeEnv
from occ_gym.baselines import RandomPolicy
from occ_gym.envs.layout import VERDICTS
from tests.helpers import make_crafted_env


def trajectory(env, seed, policy_seed=0, episodes=5):
    policy = RandomPolicy(env, seed=policy_seed)
    record = []
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        done = False
        while not done:
            action, _ = policy.predict(obs, action_masks=env.unwrapped.action_masks())
            obs, reward, terminated, truncated, info = env.step(action)
            record.append(
                (obs.tobytes(), reward, terminated, truncated, repr(sorted(info.items())))
            )
            done = terminated or truncated
        obs, _ = env.reset()
    return record


def test_same_seed_same_trajectory():
    first = trajectory(gym.make("OCC-CodeSim-v0"), seed=7)
    second = trajectory(gym.make("OCC-CodeSim-v0"), seed=7)
    assert first == second
    assert trajectory(gym.make("OCC-CodeSim-v0"), seed=8) != first


def test_outcomes_fixed_at_reset_whatever_is_peeked(sim_env):
    sim_env.reset(seed=3)
    peeked = sim_env.unwrapped.peek_attempt(2, 1, 0)
    sim_env.reset(seed=3)
    sim_env.step(2)
    sim_env.step(2)  # the second fresh attempt of tier 2 is sample 1
    assert sim_env.unwrapped.candidate == peeked


@pytest.mark.parametrize("env_id", occ_gym.ENV_IDS)
def test_pickles_mid_episode_and_continues_identically(env_id):
    env = gym.make(env_id)
    env.reset(seed=11)
    env.step(0)
    clone = pickle.loads(pickle.dumps(env))
    for each in (env, clone):
        each.step(each.unwrapped.action_layout.verify)
    a = env.step(env.unwrapped.action_layout.submit)
    b = clone.step(clone.unwrapped.action_layout.submit)
    assert a[0].tobytes() == b[0].tobytes() and a[1:4] == b[1:4]
    assert a[4]["score"] == b[4]["score"]


EPISODE_SCRIPT = """
import hashlib, sys, gymnasium as gym, numpy as np, occ_gym
env, rng, out = gym.make(sys.argv[1]), np.random.default_rng(0), []
for seed in range(30):
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action = int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append(f"{obs.tobytes().hex()} {reward!r}")
        done = terminated or truncated
print(len(out), hashlib.sha256("|".join(out).encode()).hexdigest())
"""


@pytest.mark.parametrize("env_id", occ_gym.ENV_IDS)
def test_the_same_seeds_play_the_same_episodes_in_two_processes(env_id):
    import os
    import subprocess
    import sys

    runs = [
        subprocess.run(
            [sys.executable, "-c", EPISODE_SCRIPT, env_id],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
        )
        for hash_seed in (1, 2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    assert runs[0].stdout == runs[1].stdout and int(runs[0].stdout.split()[0]) > 30


def test_async_vector_env_runs_with_masks():
    envs = gym.make_vec("OCC-CodeSim-v0", num_envs=2, vectorization_mode="async")
    obs, _ = envs.reset(seed=5)
    assert obs.shape == (2, *envs.single_observation_space.shape)
    for _ in range(20):
        masks = np.stack(envs.call("action_masks"))
        actions = np.array([np.flatnonzero(m)[0] for m in masks])  # first legal action
        obs, _rewards, _terminated, _truncated, _infos = envs.step(actions)
        assert envs.single_observation_space.contains(obs[0])
    envs.close()


def test_return_equals_oracle_score_and_observations_stay_in_space(sim_env):
    policy = RandomPolicy(sim_env, seed=1)
    for seed in range(200):
        obs, _ = sim_env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            assert sim_env.observation_space.contains(obs)
            action, _ = policy.predict(obs, action_masks=sim_env.unwrapped.action_masks())
            obs, reward, terminated, truncated, info = sim_env.step(action)
            total += reward
            done = terminated or truncated
        assert math.isclose(total, info["score"]["total"], abs_tol=1e-9)
        assert math.isclose(info["score"]["compute_penalty"], -0.001 * info["compute"])
        for key in ("hidden_pass", "public_pass", "compute", "tokens", "score", "outcome", "steps"):
            assert key in info
        if info["outcome"] != "submitted":
            assert not info["hidden_pass"] and info["score"]["correctness"] == 0.0


def test_mask_lifecycle(crafted_env):
    env = crafted_env.unwrapped
    layout = env.action_layout
    assert env.tier_names == ("never", "always")  # sorted cheapest first
    crafted_env.reset(seed=0)
    assert env.action_masks().tolist() == [True, True, False, False, False, True]
    crafted_env.step(layout.attempt("never"))
    assert env.action_masks().tolist() == [True, True, True, False, True, True]
    _, _, _, _, info = crafted_env.step(layout.verify)
    assert info["verdict"] == "failed" and info["public_passed"] < info["public_total"]
    assert env.action_masks().tolist() == [True, True, False, True, True, True]
    crafted_env.step(layout.repair)
    assert env.action_masks()[layout.verify] and not env.action_masks()[layout.repair]


def test_observation_reflects_what_happened(crafted_env):
    env = crafted_env.unwrapped
    layout, fields = env.action_layout, env.observation_layout
    obs, _ = crafted_env.reset(seed=0)
    assert fields.verdict(obs) is None and obs[fields.index("steps_left")] == 1.0
    crafted_env.step(layout.attempt("always"))
    obs, *_ = crafted_env.step(layout.verify)
    assert fields.verdict(obs) == "passed"
    assert obs[fields["candidate_tier"]].tolist() == [0.0, 1.0]
    assert obs[fields.index("best_public_fraction")] == 1.0
    assert fields.attempts_made(obs).tolist() == [0, 1]
    assert fields.steps_used(obs) == 2
    assert obs[fields.index("cost_so_far")] == pytest.approx(150 / (8 * 100))


def test_submit_hands_in_best_verified_when_current_failed(crafted_env):
    layout = crafted_env.unwrapped.action_layout
    crafted_env.reset(seed=0)
    for action in (layout.attempt("always"), layout.verify, layout.attempt("never"), layout.verify):
        crafted_env.step(action)
    *_, info = crafted_env.step(layout.submit)
    assert info["hidden_pass"] and info["submitted_tier"] == "always"


def test_repair_costs_grow_with_context(crafted_env):
    layout = crafted_env.unwrapped.action_layout
    crafted_env.reset(seed=0)
    costs = [crafted_env.step(layout.attempt("never"))[4]["cost"]]
    for _ in range(3):
        crafted_env.step(layout.verify)
        costs.append(crafted_env.step(layout.repair)[4]["cost"])
    assert costs == pytest.approx([10.0, 10 * 1.6, 10 * 2.4, 10 * 3.4])
    assert np.all(np.diff(costs) > 0)


def test_truncation_at_max_steps_submits_nothing():
    env = make_crafted_env(max_steps=3)
    layout = env.unwrapped.action_layout
    env.reset(seed=0)
    results = [env.step(layout.attempt("always")) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    assert not any(r[2] for r in results)
    info = results[-1][4]
    assert info["outcome"] == "truncated" and not info["hidden_pass"]
    assert info["score"]["total"] == pytest.approx(-0.001 * 300)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(layout.abstain)


def test_budget_masks_what_the_broker_denies():
    env = make_crafted_env(budget=120.0)
    layout = env.unwrapped.action_layout
    env.reset(seed=0)
    assert env.unwrapped.action_masks()[layout.attempt("always")]
    env.step(layout.attempt("never"))  # 10 spent, 110 left: "always" (100) still fits
    env.step(layout.verify)  # 60 spent: "always" no longer fits
    mask = env.unwrapped.action_masks()
    assert not mask[layout.attempt("always")] and mask[layout.attempt("never")]
    with pytest.raises(ValueError, match="budget"):
        env.step(layout.attempt("always"))
    obs = env.unwrapped._observation()
    assert obs[env.unwrapped.observation_layout.index("budget_left")] == pytest.approx(0.5)
    ledger = env.unwrapped._ledger
    assert [(e.scope, e.amount) for e in ledger.entries] == [("never", -10.0), ("verifier", -50.0)]


def test_render_ansi_is_a_timeline():
    env = make_crafted_env(render_mode="ansi")
    layout = env.unwrapped.action_layout
    env.reset(seed=0)
    plan = (
        layout.attempt("never"),
        layout.verify,
        layout.repair,
        layout.verify,
        layout.attempt("always"),
        layout.submit,
    )
    for action in plan:
        env.step(action)
    lines = env.render().splitlines()
    assert lines[0].startswith("task sim-train-") and len(lines) == 1 + len(plan)
    assert "ATTEMPT(never)" in lines[1] and "cost    10.0" in lines[1]
    assert "VERIFY" in lines[2] and re.search(r"public [01]/2 failed \([a-z_]+\)$", lines[2])
    assert "REPAIR" in lines[3] and "cost    16.0" in lines[3]
    assert lines[6].endswith("-> submitted: hidden 10/10, compute 226, score +0.774")
    assert OCCCodeEnv().render() is None  # no render_mode: nothing to render


def test_action_space_samples_only_legal_actions(sim_env):
    layout = sim_env.unwrapped.action_layout
    sim_env.reset(seed=0)
    sim_env.action_space.seed(0)
    seen_masked, seen_plain = set(), set()
    for _ in range(400):
        mask = sim_env.unwrapped.action_masks()
        plain = int(sim_env.action_space.sample())
        assert mask[plain] and plain in (*range(layout.num_tiers), layout.abstain)
        seen_plain.add(plain)
        action = sim_env.action_space.sample(mask=mask)  # a bool mask works, as in DESIGN.md
        seen_masked.add(int(action))
        _, _, terminated, truncated, _ = sim_env.step(action)
        if terminated or truncated:
            sim_env.reset()
    assert seen_masked == set(range(layout.size)) and len(seen_plain) == layout.num_tiers + 1
    assert sim_env.action_space == gym.spaces.Discrete(7)


def test_action_sampled_before_reset_is_legal_after_it():
    """Gymnasium's check_step_determinism samples an action, then resets, then steps."""
    env = make_crafted_env(budget=150.0)
    layout = env.unwrapped.action_layout
    env.reset(seed=0)
    env.step(layout.attempt("never"))  # a candidate: VERIFY, SUBMIT legal now, not after reset
    env.step(layout.verify)  # 60 of 150 spent: "always" (100) is now denied
    samples = {int(env.action_space.sample()) for _ in range(200)}
    assert samples == {layout.attempt("never"), layout.abstain}
    for action in samples:
        env.reset(seed=0)
        env.step(action)


def test_reset_option_task_index(sim_env):
    _, info = sim_env.reset(seed=0, options={"task_index": 42})
    assert info["task_id"] == "sim-train-00042"
    with pytest.raises(ValueError, match="task_index"):
        sim_env.reset(options={"task_index": 10**9})
    with pytest.raises(ValueError, match="unknown reset option"):
        sim_env.reset(options={"difficulty": 0.1})


def test_train_and_test_splits_are_disjoint():
    train = gym.make("OCC-CodeSim-v0").unwrapped.task_source
    test = gym.make("OCC-CodeSim-v0", split="test").unwrapped.task_source
    assert not {train.task(i).task_id for i in range(len(train))} & {
        test.task(i).task_id for i in range(len(test))
    }
    assert not np.array_equal(train.features[: len(test)], test.features)


def test_docstring_observation_table_matches_layout(sim_env):
    doc = OCCCodeEnv.__doc__
    for span, name, meaning in sim_env.unwrapped.observation_layout.rows():
        assert f"| {span:<5} | {name:<20} | {meaning:<57} |" in doc
    assert f"shape ``({sim_env.observation_space.shape[0]},)``" in doc
    assert len(VERDICTS) == 3


def test_the_documented_observation_tables_match_the_layouts(sim_env):
    page = (Path(__file__).parents[1] / "docs" / "environment.md").read_text()
    v1 = gym.make("OCC-Code-v1")
    for span, name, _ in v1.unwrapped.observation_layout.rows():
        assert f"| {span} | {name} |" in page
    for env in (v1, sim_env, gym.make("OCC-Code-v0")):
        assert f"Box(0, 1, ({env.observation_space.shape[0]},), float32)" in page


@pytest.mark.parametrize(
    "action, message",
    [
        (99, "outside Discrete"),
        (-1, "outside Discrete"),
        (1.5, "one integer"),
        ("2", "one integer"),
        (np.array([0, 1]), "one integer"),
    ],
)
def test_bad_actions_raise_clear_errors(sim_env, action, message):
    sim_env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        sim_env.unwrapped.step(action)


def test_illegal_action_names_the_reason(sim_env):
    layout = sim_env.unwrapped.action_layout
    sim_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"SUBMIT\) is illegal now: there is no candidate"):
        sim_env.unwrapped.step(layout.submit)
    with pytest.raises(ValueError, match="REPAIR needs a candidate that failed VERIFY"):
        sim_env.unwrapped.step(layout.repair)
    sim_env.step(np.int64(0))  # numpy integers are fine
    sim_env.step(np.array([layout.verify]))  # and so are one-element arrays


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"max_steps": "8"}, TypeError, "max_steps must be an int"),
        ({"max_steps": 1}, ValueError, "max_steps must be >= 2"),
        ({"verifier_cost": float("nan")}, ValueError, "verifier_cost must be finite"),
        ({"verifier_cost": "50"}, TypeError, "verifier_cost must be a number"),
        ({"budget": float("inf")}, ValueError, "budget must be finite"),
        ({"budget": 0}, ValueError, "budget must be > 0"),
        ({"render_mode": "human"}, ValueError, "render_mode"),
        ({"split": "validation"}, ValueError, "unknown split 'validation'"),
        ({"tasks": "mbpp"}, ValueError, "unknown task source 'mbpp'"),
        ({"tiers": "gpt"}, ValueError, "unknown tier set 'gpt'"),
        ({"tiers": []}, TypeError, "non-empty list"),
        (
            {
                "tiers": [
                    {
                        "name": "x",
                        "cost": -1,
                        "easy_pass": 0.5,
                        "hard_pass": 0.1,
                        "hidden_falloff": 0.1,
                    }
                ]
            },
            ValueError,
            "cost must be a finite number > 0",
        ),
        (
            {
                "tiers": [
                    {
                        "name": "x",
                        "cost": 1,
                        "easy_pass": 1.5,
                        "hard_pass": 0.1,
                        "hidden_falloff": 0.1,
                    }
                ]
            },
            ValueError,
            "easy_pass must be a probability",
        ),
        ({"tiers": [{"name": "x", "price": 1}]}, ValueError, r"unknown field\(s\) \['price'\]"),
        ({"oracle": {"correctness": float("nan")}}, ValueError, "correctness must be finite"),
        (
            {"oracle": {"compute_penalty": float("inf")}},
            ValueError,
            "compute_penalty must be finite",
        ),
        ({"oracle": {"lambda": 0.1}}, ValueError, r"unknown field\(s\) \['lambda'\]"),
        ({"oracle": 0.001}, TypeError, "oracle must be a mapping"),
        ({"simulation": {"repair_odds_factor": -2}}, ValueError, "repair_odds_factor"),
    ],
)
def test_bad_kwargs_raise_clear_errors(kwargs, error, message):
    # gym.make itself warns about an unknown render_mode before the env raises its error.
    with warnings.catch_warnings(), pytest.raises(error, match=message):
        warnings.simplefilter("ignore", UserWarning)
        gym.make("OCC-CodeSim-v0", **kwargs)


def test_unknown_keyword_is_rejected():
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_step'"):
        OCCCodeEnv(max_step=8)


def test_masks_before_reset_raise():
    with pytest.raises(RuntimeError, match="reset"):
        OCCCodeEnv().action_masks()


def test_crafted_always_tier_passes(crafted_env):
    layout = crafted_env.unwrapped.action_layout
    crafted_env.reset(seed=0)
    _, reward_attempt, *_ = crafted_env.step(layout.attempt("always"))
    _, reward_submit, terminated, _, info = crafted_env.step(layout.submit)
    assert terminated and info["hidden_pass"] and info["public_pass"]
    assert reward_attempt == pytest.approx(-0.1) and reward_submit == pytest.approx(1.0)
