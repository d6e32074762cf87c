"""Each baseline does what it promises, on crafted episodes whose outcomes are certain."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from occ_gym.baselines import (
    FixedTier,
    HeuristicOCC,
    HindsightOracle,
    RandomPolicy,
    VerifierGuided,
)
from occ_gym.bench.runner import baseline_suite
from tests.helpers import ALWAYS, NEVER, make_crafted_env, rollout


def names(env, actions):
    return [env.unwrapped.action_layout.name(a) for a in actions]


def test_fixed_tier_attempts_once_and_submits_unverified(crafted_env):
    for tier in ("never", "always"):
        actions, _, info = rollout(crafted_env, FixedTier(crafted_env, tier), seed=0)
        assert names(crafted_env, actions) == [f"ATTEMPT({tier})", "SUBMIT"]
        assert info["hidden_pass"] is (tier == "always")


def test_verifier_guided_repairs_until_max_tries(crafted_env):
    actions, _, info = rollout(crafted_env, VerifierGuided(crafted_env, "never", max_tries=3), 0)
    assert names(crafted_env, actions) == [
        "ATTEMPT(never)",
        "VERIFY",
        "REPAIR",
        "VERIFY",
        "REPAIR",
        "VERIFY",
        "SUBMIT",
    ]
    assert not info["hidden_pass"]


def test_verifier_guided_stops_at_first_public_pass(crafted_env):
    actions, _, info = rollout(crafted_env, VerifierGuided(crafted_env, "always"), 0)
    assert names(crafted_env, actions) == ["ATTEMPT(always)", "VERIFY", "SUBMIT"]
    assert info["hidden_pass"]


def test_verifier_guided_attempts_afresh_when_repair_is_denied():
    env = make_crafted_env(budget=75.0)  # 10 + 50 spent after VERIFY: a 16-unit repair is denied
    actions, _, _ = rollout(env, VerifierGuided(env, "never", max_tries=2), 0)
    assert names(env, actions) == ["ATTEMPT(never)", "VERIFY", "ATTEMPT(never)", "SUBMIT"]


def test_heuristic_occ_cascades_cheap_first_and_stops_at_first_pass(crafted_env):
    policy = HeuristicOCC(crafted_env)
    assert policy.tier_order() == [0, 1]
    actions, ret, info = rollout(crafted_env, policy, 0)
    assert names(crafted_env, actions) == [
        "ATTEMPT(never)",
        "VERIFY",
        "ATTEMPT(always)",
        "VERIFY",
        "SUBMIT",
    ]
    assert info["hidden_pass"] and ret == pytest.approx(1.0 - 0.001 * 210)


def test_heuristic_occ_ledger_learns_to_skip_a_useless_tier(crafted_env):
    from occ_gym.evaluation import evaluate

    policy = HeuristicOCC(crafted_env, decay=0.1)
    evaluate(policy, crafted_env, episodes=30, seed=0)
    assert policy.tier_order() == [1, 0]
    actions, _, _ = rollout(crafted_env, policy, 99)
    assert names(crafted_env, actions) == ["ATTEMPT(always)", "VERIFY", "SUBMIT"]


def test_heuristic_occ_exhausted_cascade():
    env = make_crafted_env(tiers=[NEVER])
    submit, _, _ = rollout(env, HeuristicOCC(env), 0)
    abstain, _, info = rollout(env, HeuristicOCC(env, on_exhausted="abstain"), 0)
    assert names(env, submit)[-1] == "SUBMIT"
    assert names(env, abstain)[-1] == "ABSTAIN" and info["outcome"] == "abstained"


def test_heuristic_occ_depth_cuts_the_cascade(crafted_env):
    _, _, full = rollout(crafted_env, HeuristicOCC(crafted_env), 0)
    _, _, shallow = rollout(crafted_env, HeuristicOCC(crafted_env, depth=1), 0)
    assert full["tier_attempts"] == [1, 1] and full["hidden_pass"]  # never, then always
    assert shallow["tier_attempts"] == [1, 0] and not shallow["hidden_pass"]
    assert HeuristicOCC(crafted_env, depth=1).name == "HeuristicOCC(depth 1)"


def test_hindsight_oracle_takes_the_cheapest_sure_pass(crafted_env):
    actions, ret, _info = rollout(crafted_env, HindsightOracle(crafted_env), 0)
    assert names(crafted_env, actions) == ["ATTEMPT(always)", "SUBMIT"]
    assert ret == pytest.approx(0.9)


def test_hindsight_oracle_abstains_when_nothing_can_pass():
    env = make_crafted_env(tiers=[NEVER])
    actions, ret, _ = rollout(env, HindsightOracle(env), 0)
    assert names(env, actions) == ["ABSTAIN"] and ret == 0.0


def test_hindsight_oracle_bounds_every_baseline_episode_by_episode(sim_env):
    oracle = HindsightOracle(sim_env)
    others = [p for p in baseline_suite(sim_env, seed=0) if not isinstance(p, HindsightOracle)]
    for seed in range(150):
        _, best, _ = rollout(sim_env, oracle, seed)
        for policy in others:
            _, ret, _ = rollout(sim_env, policy, seed)
            assert ret <= best + 1e-9, (policy.name, seed)


def test_hindsight_oracle_rejects_batches(sim_env):
    obs, _ = sim_env.reset(seed=0)
    with pytest.raises(ValueError, match="one unvectorised env"):
        HindsightOracle(sim_env).predict(np.stack([obs, obs]))


def test_hindsight_oracle_respects_a_budget():
    env = make_crafted_env(tiers=[NEVER, {**ALWAYS, "cost": 500.0}], budget=400.0)
    actions, _ret, _ = rollout(env, HindsightOracle(env), 0)
    assert names(env, actions) == ["ABSTAIN"]


def test_random_policy_is_legal_and_seeded(sim_env):
    policy_a, policy_b = RandomPolicy(sim_env, seed=3), RandomPolicy(sim_env, seed=3)
    first = [rollout(sim_env, policy_a, s)[0] for s in range(30)]
    second = [rollout(sim_env, policy_b, s)[0] for s in range(30)]
    assert first == second
    assert len({a for episode in first for a in episode}) == sim_env.action_space.n


def test_predict_handles_batches_like_sb3(sim_env):
    obs, _ = sim_env.reset(seed=0)
    mask = sim_env.unwrapped.action_masks()
    policy = FixedTier(sim_env, "medium")
    single, state = policy.predict(obs, action_masks=mask)
    batch, _ = policy.predict(np.stack([obs, obs]), action_masks=np.stack([mask, mask]))
    assert single.shape == () and batch.tolist() == [1, 1] and state is None
    with pytest.raises(ValueError, match="observation must have shape"):
        policy.predict(obs[:5])


@pytest.mark.parametrize("tier", ["huge", 3, -2, 1.0])
def test_unknown_tier_is_a_clear_error(sim_env, tier):
    with pytest.raises(ValueError, match="unknown tier"):
        FixedTier(sim_env, tier)


def test_bad_baseline_arguments(sim_env):
    with pytest.raises(ValueError, match="max_tries"):
        VerifierGuided(sim_env, max_tries=0)
    with pytest.raises(ValueError, match="on_exhausted"):
        HeuristicOCC(sim_env, on_exhausted="retry")
    with pytest.raises(ValueError, match="depth"):
        HeuristicOCC(sim_env, depth=4)
    with pytest.raises(TypeError, match="occ-gym environment"):
        FixedTier(gym.make("CartPole-v1"), 0)
