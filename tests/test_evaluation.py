"""The evaluation loop and the ``occ-gym bench`` command."""

from __future__ import annotations

import pytest

from occ_gym.baselines import FixedTier, HeuristicOCC, VerifierGuided
from occ_gym.cli import main
from occ_gym.evaluation import EPISODE_COLUMNS, evaluate, run_episodes


def test_evaluate_reports_rates_and_means(sim_env):
    result = evaluate(FixedTier(sim_env, "expensive"), sim_env, episodes=50, seed=0)
    assert result.policy == "FixedTier(expensive)" and result.episodes == 50
    assert result.mean_compute == 350.0 and result.mean_steps == 2.0
    assert 0.0 < result.hidden_pass_rate <= result.public_pass_rate + 0.1 <= 1.1
    assert result.abstain_rate == 0.0 and result.truncation_rate == 0.0


def test_evaluate_is_reproducible_and_uses_common_problems(sim_env):
    a = evaluate(HeuristicOCC(sim_env), sim_env, episodes=40, seed=5)
    b = evaluate(HeuristicOCC(sim_env), sim_env, episodes=40, seed=5)
    assert a == b
    assert evaluate(HeuristicOCC(sim_env), sim_env, episodes=40, seed=6) != a


def test_verification_costs_compute_but_finds_more_passes(sim_env):
    fixed = evaluate(FixedTier(sim_env, "cheap"), sim_env, episodes=300, seed=0)
    guided = evaluate(VerifierGuided(sim_env, "cheap", max_tries=3), sim_env, episodes=300, seed=0)
    assert guided.hidden_pass_rate > fixed.hidden_pass_rate + 0.2
    assert guided.mean_compute > fixed.mean_compute


@pytest.mark.parametrize("episodes", [0, -3, 2.5])
def test_evaluate_rejects_bad_episode_counts(sim_env, episodes):
    with pytest.raises(ValueError, match="episodes"):
        evaluate(FixedTier(sim_env, 0), sim_env, episodes=episodes)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--episodes", "0"],
        ["bench", "--seeds", "0"],
        ["bench", "--env", "Nope-v0"],
        ["report"],
        ["fly"],
    ],
)
def test_bench_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_bench_fails_fast_on_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["bench", "--episodes", "1000000", "--out", str(blocker / "sub")]) == 2
    assert "error" in capsys.readouterr().out


def test_run_episodes_records_every_column_per_episode(sim_env):
    log = run_episodes(FixedTier(sim_env, "expensive"), sim_env, 20, seed=1)
    assert set(log) == set(EPISODE_COLUMNS) and all(len(v) == 20 for v in log.values())
    assert (log["first_tier"] == 2).all() and (log["repairs"] == 0).all()
    assert ((log["difficulty"] >= 0) & (log["difficulty"] <= 1)).all()
    assert (log["model_compute"] == log["compute"]).all()  # no VERIFY: all compute is the model's
    guided = run_episodes(VerifierGuided(sim_env, "cheap", max_tries=3), sim_env, 20, seed=1)
    assert (guided["compute"] > guided["model_compute"]).all()
