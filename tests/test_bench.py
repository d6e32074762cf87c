"""``occ-gym bench`` and ``occ-gym report``: results, intervals, curves, findings, re-rendering."""

from __future__ import annotations

import copy
import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest

from occ_gym.bench.findings import compute_findings, render_findings
from occ_gym.bench.labels import ORACLE, REFERENCE, SHIPPED
from occ_gym.bench.report import OUTPUTS, render_leaderboard
from occ_gym.bench.runner import ENTRY_METRICS, Bench, BenchConfig
from occ_gym.cli import main
from occ_gym.policies.learned import shipped_policy_path

SMALL = [
    "--env",
    "OCC-CodeSim-v0",
    "--episodes",
    "40",
    "--seeds",
    "2",
    "--resamples",
    "200",
    *("--tune-episodes", "32", "--planner-episodes", "2000", "--router-episodes", "2000"),
]

TINY_FITS = {"tune_episodes": 32, "planner_episodes": 2000, "router_episodes": 2000}


@pytest.fixture(scope="module")
def small_bench() -> tuple[Bench, dict]:
    config = BenchConfig(env_id="OCC-CodeSim-v0", episodes=150, seeds=2, resamples=200, **TINY_FITS)
    bench = Bench(config)
    return bench, bench.run()


def test_bench_writes_results_and_report_rerenders_them_exactly(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["bench", *SMALL, "--seed", "3", "--out", str(out)]) == 0
    assert REFERENCE in capsys.readouterr().out  # the leaderboard ends the run
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [3, 43] and results["episodes"] == 40
    assert results["command"].endswith(
        "--episodes 40 --seeds 2 --seed 3 --resamples 200 "
        "--tune-episodes 32 --planner-episodes 2000 --router-episodes 2000"
    )
    # CodeSim shows no answer-side signal: no AutoMix and no answer-side router there.
    assert set(results["fits"]) == {
        "TunedCascade",
        "BestRoute",
        "Router(prompt only)",
        "ObservablePlanner",
    }
    assert len(results["cfg_hash"]) == 16 and len(results["env_hash"]) == 16
    first = {name: (out / name).read_bytes() for name in OUTPUTS}
    for name in OUTPUTS:
        (out / name).unlink()
    assert main(["report", str(out)]) == 0
    for name in ("leaderboard.md", "findings.md"):
        assert (out / name).read_bytes() == first[name], name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_entry_has_every_metric_with_an_interval_around_its_mean(small_bench):
    _, results = small_bench
    labels = [entry["label"] for entry in results["entries"]]
    assert REFERENCE in labels and SHIPPED in labels and labels[-1] == ORACLE
    assert "VerifierGuided(expensive, 4)" in labels and "HeuristicOCC(depth 1)" in labels
    for entry in results["entries"]:
        for name in (*ENTRY_METRICS, "regret"):
            metric = entry["metrics"][name]
            low, high = metric["ci"]
            assert low - 1e-9 <= metric["mean"] <= high + 1e-9, (entry["label"], name)
            assert len(metric["per_seed"]) == 2
            assert metric["mean"] == pytest.approx(np.mean(metric["per_seed"]))
    by_label = {entry["label"]: entry["metrics"] for entry in results["entries"]}
    assert by_label[results["weak"]]["delta_ibc"]["mean"] is None  # undefined at its own cost
    assert by_label[REFERENCE]["delta_ibc"]["mean"] == pytest.approx(0.0, abs=1e-12)
    oracle = next(e for e in results["entries"] if e["label"] == ORACLE)
    assert oracle["metrics"]["regret"]["mean"] == 0.0
    assert all(e["metrics"]["regret"]["mean"] >= 0 for e in results["entries"])


def test_curves_carry_the_routing_metrics(small_bench):
    _, results = small_bench
    curves = {curve["family"]: curve for curve in results["curves"]}
    assert ORACLE not in curves
    fixed = curves["FixedTier"]["metrics"]
    assert fixed["cost_cut"]["mean"] == pytest.approx(0.0)  # the reference is on its own hull
    assert fixed["cpt50"]["mean"] <= fixed["cpt80"]["mean"] <= fixed["cpt95"]["mean"] <= 0.95
    for curve in results["curves"]:
        assert 0.0 <= curve["metrics"]["aiq"]["mean"] <= 1.0
        assert curve["metrics"]["apgr"]["mean"] >= 0.5 - 1e-9  # weak and strong are always there


def test_findings_state_their_numbers_and_test(small_bench):
    _, results = small_bench
    keys = [finding["key"] for finding in results["findings"]]
    assert "learned_vs_best_rule" in keys and "public_pass_hidden_fail" in keys
    text = render_findings(results)
    assert text.count("**Finding ") == len(keys) and text.count("\n*Test:* ") == len(keys)
    comparison = results["findings"][keys.index("learned_vs_best_rule")]["comparisons"][0]
    assert f"{comparison['delta']:+.3f}" in text


def test_findings_are_absent_when_their_data_is_missing(small_bench):
    bench, results = small_bench
    rng = np.random.default_rng(0)

    def keys_of(changed: Bench, results: dict = results) -> set[str]:
        return {finding["key"] for finding in compute_findings(changed, results, rng)}

    assert "learned_vs_best_rule" in keys_of(bench)
    # Repair against fresh needs more failed attempts than 300 episodes give to decide.
    longer = copy.copy(bench)
    longer.config = dataclasses.replace(bench.config, episodes=600)
    assert "repair_vs_fresh" in keys_of(longer)
    without_learned = copy.copy(bench)
    without_learned.entries = [e for e in bench.entries if not e.learned]
    assert not keys_of(without_learned) & {
        "learned_vs_best_rule",
        "tier_tracks_difficulty",
        "where_learned_saves_compute",
    }
    without_difficulty = copy.copy(bench)
    without_difficulty.logs = {
        label: {**log, "difficulty": np.full_like(log["difficulty"], np.nan)}
        for label, log in bench.logs.items()
    }
    found = keys_of(without_difficulty)
    assert "tier_tracks_difficulty" not in found and "where_learned_saves_compute" not in found
    without_repairs = copy.copy(longer)
    without_repairs.env = gym.make("OCC-CodeSim-v0", split="test", max_steps=2)
    assert "repair_vs_fresh" not in keys_of(without_repairs)
    assert "cost_cut_at_matched_quality" not in keys_of(bench, {**results, "curves": []})
    assert "supports no finding" in render_findings({**results, "findings": []})


def test_the_leaderboard_names_its_command_seeds_and_hashes(small_bench):
    _, results = small_bench
    board = render_leaderboard(results)
    assert results["command"] in board and results["cfg_hash"] in board
    assert "evaluation seeds 0, 150" in board and "**Cost-quality curves.**" in board


def test_report_refuses_a_folder_without_results(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "results.json" in capsys.readouterr().out
    (tmp_path / "results.json").write_text("{not json")
    assert main(["report", str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().out
    (tmp_path / "results.json").write_text("[1, 2]")
    assert main(["report", str(tmp_path)]) == 2
    assert "not a JSON object" in capsys.readouterr().out
    (tmp_path / "results.json").write_text('{"command": "x"}')
    assert main(["report", str(tmp_path)]) == 2
    assert "missing ['curves', 'entries', 'findings']" in capsys.readouterr().out


@pytest.mark.parametrize("field", ["episodes", "seeds", "resamples", *TINY_FITS])
def test_bench_config_refuses_bad_counts(field):
    with pytest.raises(ValueError, match=field):
        BenchConfig(**{field: 0})


def test_two_policies_with_one_name_are_refused_before_the_run(capsys):
    path = str(shipped_policy_path("OCC-CodeSim-v0"))
    assert main(["bench", *SMALL, "--policy", path, "--policy", path]) == 2
    assert "share the name" in capsys.readouterr().out


@pytest.mark.parametrize("env_id, episodes", [("OCC-Code-v0", 5), ("OCC-CodeSim-v0", 1)])
def test_a_small_bench_reports_undefined_metrics_and_keeps_its_episodes(tmp_path, env_id, episodes):
    """Small runs used to raise in a bootstrap resample where the strong tier scored below the
    weak one, after every policy was played, and leave --out empty."""
    import pyarrow.parquet as pq

    out = tmp_path / "bench"
    fits = ["--tune-episodes", "32", "--planner-episodes", "2000", "--router-episodes", "2000"]
    main(
        [
            "bench",
            "--env",
            env_id,
            "--episodes",
            str(episodes),
            "--seeds",
            "2",
            *fits,
            "--out",
            str(out),
        ]
    )
    results = json.loads((out / "results.json").read_text())
    episodes_table = pq.read_table(out / "episodes.parquet")
    assert episodes_table.num_rows == len(results["entries"]) * 2 * episodes
    partial = [
        metric
        for curve in results["curves"]
        for metric in curve["metrics"].values()
        if "defined_resamples" in metric
    ]
    assert partial and all(0 <= m["defined_resamples"] < 1000 for m in partial)
    assert "defined in" in (out / "leaderboard.md").read_text()


def test_a_policy_that_never_submits_gets_no_delta_ibc(tmp_path):
    """An always-ABSTAIN policy spends nothing and gains nothing: ΔIBC once ranked it first."""
    from occ_gym.bench.runner import Entry

    config = BenchConfig(env_id="OCC-CodeSim-v0", episodes=20, seeds=1, resamples=200, **TINY_FITS)
    bench = Bench(config)
    abstain = bench.env.unwrapped.action_layout.abstain

    class AlwaysAbstain:
        name = "AlwaysAbstain"

        def predict(
            self, obs, state=None, episode_start=None, deterministic=True, action_masks=None
        ):
            return np.array(abstain), state

    penalty = bench.penalty
    bench.entries.insert(
        0,
        Entry(
            "AlwaysAbstain",
            "AlwaysAbstain",
            "",
            None,
            penalty,
            True,
            lambda env, seed: AlwaysAbstain(),
        ),
    )
    results = bench.run()
    numbers = next(e for e in results["entries"] if e["label"] == "AlwaysAbstain")["metrics"]
    assert numbers["delta_ibc"]["mean"] is None


def test_a_learner_shipped_as_several_seeds_is_one_row_with_intervals_across_seeds(
    tmp_path, monkeypatch
):
    """Seed block k plays training seed k; the row's interval and its findings' differences
    are t-intervals over the blocks, not bootstraps over episodes."""
    import occ_gym.policies.learned as learned
    from occ_gym.bench.stats import t_interval

    shipped = shipped_policy_path("OCC-CodeSim-v0")
    record = json.loads((shipped.parent / "run.json").read_text())
    for seed in (0, 1):
        folder = tmp_path / "OCC-CodeSim-v0" / "maskable_ppo" / f"seed={seed}"
        folder.mkdir(parents=True)
        folder.joinpath("policy.zip").write_bytes(shipped.read_bytes())
        folder.joinpath("run.json").write_text(json.dumps({**record, "seed": seed}))
    monkeypatch.setattr(learned, "POLICIES_DIR", tmp_path)
    assert learned.shipped_policies("OCC-CodeSim-v0") == []  # the seeds are no λ points
    config = BenchConfig(env_id="OCC-CodeSim-v0", episodes=60, seeds=3, resamples=200, **TINY_FITS)
    bench = Bench(config)
    row = next(e for e in bench.entries if e.label == "MaskablePPO (2 seeds)")
    assert row.learned and row.training_seeds == 2
    env = bench.env
    chosen = [row.build(env, seed).name for seed in config.seed_list]
    assert chosen == [
        "MaskablePPO (2 seeds)[0]",
        "MaskablePPO (2 seeds)[1]",
        "MaskablePPO (2 seeds)[0]",
    ]
    results = bench.run()
    numbers = next(e for e in results["entries"] if e["label"] == row.label)["metrics"]["return"]
    assert numbers["ci"] == pytest.approx(list(t_interval(numbers["per_seed"])))
    finding = next(f for f in results["findings"] if f["key"] == "learned_vs_best_rule")
    comparison = next(c for c in finding["comparisons"] if c["policy"] == row.label)
    assert comparison["interval_over"] == "seeds"
    rule = bench.logs[comparison["rule"]]["return"]
    blocks = (bench.logs[row.label]["return"] - rule).reshape(3, -1).mean(axis=1)
    assert comparison["ci"] == pytest.approx(list(t_interval(blocks)))
    assert "seed blocks" in render_findings(results)
    assert "t-intervals across the blocks" in render_leaderboard(results)
