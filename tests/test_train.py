"""PPO and MaskablePPO training with tiny budgets: real SB3 runs, checkpoints and run.json."""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import occ_gym
from occ_gym.cli import main as cli_main
from occ_gym.evaluation import evaluate
from occ_gym.hashing import env_hash, stable_hash
from occ_gym.policies.learned import (
    PolicyFileError,
    load_policy,
    registered_compute_penalty,
    ship_policy,
    shipped_policies,
    shipped_policy_path,
    shipped_seed_sets,
)
from occ_gym.train.ppo import TrainConfig, TrainError, parse_override, resolve, train

TINY = {"n_steps": 64, "batch_size": 64, "n_epochs": 2}
RUN_FIELDS = {
    "command",
    "config",
    "hyperparams",
    "cfg_hash",
    "env_id",
    "env_hash",
    "algo",
    "seed",
    "timesteps_done",
    "resumed_at",
    "wall_seconds",
    "fps",
    "versions",
    "eval_curve",
    "final_metrics",
}


def tiny_config(out: Path, env_id: str, algo: str, **changes) -> TrainConfig:
    config = TrainConfig(
        env_id=env_id,
        algo=algo,
        out=str(out),
        seed=0,
        timesteps=512,
        n_envs=2,
        overrides=TINY,
        eval_episodes=5,
        eval_every=256,
    )
    return replace(config, **changes)


@pytest.fixture(
    scope="module",
    # MaskablePPO on every env; plain PPO (masks in the observation only) on the default one.
    params=[(e, "maskable_ppo") for e in occ_gym.ENV_IDS] + [("OCC-Code-v1", "ppo")],
    ids=lambda param: "-".join(param),
)
def tiny_run(request, tmp_path_factory):
    env_id, algo = request.param
    out = tmp_path_factory.mktemp(f"{env_id}-{algo}")
    return train(tiny_config(out, env_id, algo)), env_id, algo


def test_learn_512_steps_writes_checkpoints_and_a_complete_run_record(tiny_run):
    result, env_id, algo = tiny_run
    assert result.model.num_timesteps == 512
    for name in ("best.zip", "last.zip", "run.json"):
        assert (result.out / name).is_file()
    record = json.loads((result.out / "run.json").read_text())
    assert set(record) == RUN_FIELDS
    assert record["env_id"] == env_id and record["algo"] == algo and record["seed"] == 0
    assert record["timesteps_done"] == 512
    # 256 and 512 while collecting rollouts (before their update), then the final model
    assert [point["timesteps"] for point in record["eval_curve"]] == [256, 512, 512]
    assert record["eval_curve"][-1]["updates"] == result.model._n_updates
    assert set(record["versions"]) >= {"stable_baselines3", "sb3_contrib", "torch", "gymnasium"}
    for name in ("last", "best"):
        metrics = record["final_metrics"][name]
        assert metrics["episodes"] == 5
        assert 0.0 <= metrics["hidden_pass_rate"] <= 1.0
    if algo == "maskable_ppo":  # the val curve meets the episodes evaluate() meets on val
        curve_end = record["eval_curve"][-1]
        val = evaluate(load_policy(result.out), gym.make(env_id, split="val"), 5, seed=0)
        assert curve_end["mean_return"] == pytest.approx(val.mean_return, abs=1e-5)
        assert curve_end["hidden_pass_rate"] == val.hidden_pass_rate
    assert list((result.out / "tb").glob("run_*/events.out.tfevents.*"))
    assert len(list((result.out / "monitor").glob("*.monitor.csv"))) == 2


def assert_plays_legally(policy, env: gym.Env, steps: int, seed: int) -> None:
    """``steps`` sampled (not greedy) actions of ``policy``, each one allowed by the mask."""
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        mask = env.unwrapped.action_masks()
        action, _ = policy.predict(obs, action_masks=mask, deterministic=False)
        assert mask[int(action)]
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            obs, _ = env.reset()


def test_a_loaded_policy_never_takes_a_masked_action_in_1000_steps(tiny_run):
    result, env_id, _ = tiny_run
    assert_plays_legally(
        load_policy(result.out / "last.zip"), gym.make(env_id, split="test"), 1000, 3
    )


def test_a_loaded_policy_predicts_a_batch_with_a_batch_of_masks(tiny_run):
    result, env_id, _ = tiny_run
    policy = load_policy(result.out)  # a run folder means its last.zip
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    masks = np.zeros((3, env.action_space.n), dtype=bool)
    masks[:, -1] = True  # only ABSTAIN
    actions, _ = policy.predict(np.stack([obs] * 3), action_masks=masks)
    assert actions.tolist() == [env.action_space.n - 1] * 3


def test_training_resumes_from_a_checkpoint(tmp_path):
    first = train(tiny_config(tmp_path / "a", "OCC-CodeSim-v0", "maskable_ppo"))
    resumed = train(
        tiny_config(
            tmp_path / "b",
            "OCC-CodeSim-v0",
            "maskable_ppo",
            timesteps=1024,
            resume=str(first.out / "last.zip"),
        )
    )
    assert resumed.record["resumed_at"] == 512
    assert resumed.record["timesteps_done"] == 1024
    # the whole curve: the run it resumed from, then its own points
    points = [p["timesteps"] for p in resumed.record["eval_curve"]]
    assert points == [256, 512, 512, 768, 1024, 1024]


def test_the_same_seed_trains_the_same_weights(tmp_path):
    runs = [
        train(tiny_config(tmp_path / name, "OCC-CodeSim-v0", "maskable_ppo", timesteps=256))
        for name in ("a", "b")
    ]
    weights = [r.model.policy.state_dict() for r in runs]
    for key, value in weights[0].items():
        assert np.array_equal(value.numpy(), weights[1][key].numpy()), key
    assert runs[0].record["cfg_hash"] != ""  # the folders differ, so the hashes differ


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env_id": "CartPole-v1"}, "unknown env id"),
        ({"algo": "dqn"}, "unknown algo"),
        ({"timesteps": -5}, "timesteps must be an int >= 1"),
        ({"n_envs": 0}, "n_envs must be an int >= 1"),
        ({"overrides": {"learning_rat": 0.1}}, "takes no hyperparameter(s) ['learning_rat']"),
        ({"resume": "/nonexistent/last.zip"}, "no checkpoint to resume"),
        ({"env_kwargs": {"oracle": {"lamda": 1.0}}}, "refuses env_kwargs"),
        ({"env_kwargs": {"split": "test"}}, "may not set split"),
    ],
)
def test_bad_arguments_fail_before_training_with_a_clear_message(tmp_path, changes, message):
    out = tmp_path / "run"
    config = replace(tiny_config(out, "OCC-CodeSim-v0", "maskable_ppo"), **changes)
    with pytest.raises(TrainError) as raised:
        train(config)
    assert message in str(raised.value)
    assert not out.exists()


def test_a_finished_run_is_never_overwritten(tiny_run):
    result, env_id, algo = tiny_run
    before = (result.out / "run.json").read_text()
    with pytest.raises(TrainError, match="already holds a run"):
        train(tiny_config(result.out, env_id, algo))
    assert (result.out / "run.json").read_text() == before


def test_an_unwritable_run_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(TrainError, match="cannot write the run folder"):
        resolve(tiny_config(blocker / "run", "OCC-CodeSim-v0", "ppo"))


def test_the_cli_reports_bad_arguments_and_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:  # argparse's choices, from the config's
        cli_main(["train", "--env", "Nope-v0", "--out", str(tmp_path / "run")])
    assert raised.value.code == 2
    assert "invalid choice: 'Nope-v0'" in capsys.readouterr().err
    code = cli_main(["train", "--timesteps", "0", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "timesteps must be an int >= 1, got 0" in capsys.readouterr().out


def test_env_kwargs_reach_the_envs_and_the_recorded_command(tmp_path):
    config = replace(
        tiny_config(tmp_path / "run", "OCC-CodeSim-v0", "maskable_ppo"),
        env_kwargs={"oracle": {"compute_penalty": 0.004}, "max_steps": 6},
    )
    result = train(config)
    command = result.record["command"]
    assert "--env-kwarg 'oracle={compute_penalty = 0.004}'" in command
    assert "--env-kwarg max_steps=6" in command
    env = result.model.get_env().envs[0]
    assert env.unwrapped.oracle.compute_penalty == 0.004 and env.unwrapped.max_steps == 6
    arguments = shlex.split(command)[2:]
    flags = [arguments[i + 1] for i, arg in enumerate(arguments) if arg == "--env-kwarg"]
    assert dict(map(parse_override, flags)) == config.env_kwargs


def test_overrides_are_toml_values():
    assert parse_override("learning_rate=1e-3") == ("learning_rate", 0.001)
    assert parse_override("policy_kwargs={net_arch=[32, 32]}") == (
        "policy_kwargs",
        {"net_arch": [32, 32]},
    )
    assert parse_override("policy=MlpPolicy") == ("policy", "MlpPolicy")
    with pytest.raises(TrainError, match="key=value"):
        parse_override("learning_rate")


def test_load_policy_names_a_file_that_is_not_a_policy(tmp_path):
    garbage = tmp_path / "policy.zip"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(PolicyFileError, match=str(garbage)):
        load_policy(garbage)
    with pytest.raises(PolicyFileError, match="no policy file"):
        load_policy(tmp_path / "missing.zip")


def test_bench_puts_a_trained_policy_in_the_same_table(tiny_run, tmp_path, capsys):
    result, env_id, algo = tiny_run
    if algo != "maskable_ppo" or env_id != "OCC-CodeSim-v0":
        pytest.skip("one combination is enough")
    out = tmp_path / "bench"
    code = cli_main(
        [
            "bench",
            "--env",
            env_id,
            "--episodes",
            "10",
            "--seeds",
            "1",
            "--resamples",
            "50",
            *("--tune-episodes", "32", "--planner-episodes", "2000", "--router-episodes", "2000"),
            "--policy",
            str(result.out / "best.zip"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    names = [entry["label"] for entry in results["entries"]]
    assert any(name.startswith("MaskablePPO(") and "best.zip" in name for name in names)
    assert names[-1].startswith("HindsightOracle")


def test_config_hashes_are_identical_in_two_processes():
    value = {"b": [1, 2.5, "x"], "a": {"nested": True}}
    script = (
        "from occ_gym.hashing import env_hash, stable_hash; "
        "print(stable_hash({'a': {'nested': True}, 'b': [1, 2.5, 'x']}))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == stable_hash(value)


@pytest.mark.parametrize("env_id", [e for e in occ_gym.ENV_IDS if e != "OCC-Traces-v0"])
def test_the_shipped_policies_match_the_shipped_env_and_play_legally(env_id):
    """Every env id ships trained policies but OCC-Traces-v0, whose pool is the user's."""
    assert shipped_policy_path(env_id) is not None, f"no shipped policy for {env_id}"
    shipped = shipped_policies(env_id)
    penalties = [penalty for penalty, _ in shipped]
    assert len(set(penalties)) == len(penalties), "two shipped policies share a λ"
    seed_sets = shipped_seed_sets(env_id)
    for algo, paths in seed_sets.items():
        records = [json.loads((path.parent / "run.json").read_text()) for path in paths]
        assert [r["seed"] for r in records] == list(range(len(paths))) and len(paths) >= 5
        assert all(r["algo"] == algo and r["shipped_checkpoint"] == "best.zip" for r in records)
    own = registered_compute_penalty(env_id)
    seeded = [(own, path) for paths in seed_sets.values() for path in paths]
    for penalty, path in shipped + seeded:
        record = json.loads((path.parent / "run.json").read_text())
        assert set(record) >= RUN_FIELDS
        assert record["command"].startswith(f"occ-gym train --env {env_id} ")
        env = gym.make(env_id, split="test", **record["config"]["env_kwargs"])
        assert env.unwrapped.oracle.compute_penalty == penalty
        assert record["env_hash"] == env_hash(env), f"{path}: the env changed since training"
        policy = load_policy(path)
        obs, _ = env.reset(seed=0)
        for _ in range(100):
            mask = env.unwrapped.action_masks()
            action, _ = policy.predict(obs, action_masks=mask)
            assert mask[int(action)]
            obs, _, terminated, truncated, _ = env.step(int(action))
            if terminated or truncated:
                obs, _ = env.reset()


def test_training_runs_on_subprocess_envs(tmp_path):
    config = tiny_config(tmp_path / "run", "OCC-CodeSim-v0", "ppo", vec_env="subproc")
    result = train(replace(config, timesteps=256))
    assert result.model.num_timesteps == 256
    assert result.record["config"]["vec_env"] == "subproc"


def test_training_runs_on_the_native_vector_env(tmp_path):
    config = tiny_config(tmp_path / "run", "OCC-Code-v0", "maskable_ppo", vec_env="native")
    result = train(config)
    assert result.model.num_timesteps >= 512
    assert (result.out / "monitor" / "native.monitor.csv").is_file()
    curve = result.record["eval_curve"]
    # same policy, same episodes: SB3's eval VecEnv holds rewards as float32, evaluate float64
    val = evaluate(load_policy(result.out), gym.make("OCC-Code-v0", split="val"), 5, seed=0)
    assert curve[-1]["mean_return"] == pytest.approx(val.mean_return, abs=1e-6)
    with pytest.raises(TrainError, match="maskable_ppo"):
        resolve(replace(config, algo="ppo", out=str(tmp_path / "other")))


def test_a_run_folder_means_its_last_checkpoint_and_the_command_reproduces_the_run(tiny_run):
    from occ_gym.cli import build_parser

    result, env_id, algo = tiny_run
    assert load_policy(result.out).name.endswith("last.zip)")
    args = build_parser().parse_args(shlex.split(result.record["command"])[1:])
    config = result.record["config"]
    assert (args.env, args.algo, args.vec_env) == (env_id, algo, config["vec_env"])
    for flag in ("timesteps", "seed", "n_envs", "eval_episodes", "eval_every"):
        assert getattr(args, flag) == config[flag], flag


def test_best_checkpoint_choice_sees_the_final_update(tmp_path):
    """The last evaluation used to run before the final update, so best.zip could be a model
    the run had left behind (at worst the untrained one). An evaluation at the run's last step
    count, made while SB3 collected that rollout, still saw the model one update short."""
    for eval_every, points in ((384, [384, 512]), (256, [256, 512, 512])):
        config = tiny_config(
            tmp_path / str(eval_every), "OCC-CodeSim-v0", "maskable_ppo", eval_every=eval_every
        )
        result = train(config)
        curve = result.record["eval_curve"]
        assert [p["timesteps"] for p in curve] == points
        assert curve[-1]["updates"] == result.model._n_updates
        assert all(a["updates"] < b["updates"] for a, b in itertools.pairwise(curve))


def test_bench_refuses_a_policy_trained_for_another_env(tiny_run, tmp_path):
    result, env_id, algo = tiny_run
    if algo != "maskable_ppo" or env_id != "OCC-CodeSim-v0":
        pytest.skip("one combination is enough")
    other = "OCC-Code-v0"
    code = cli_main(
        ["bench", "--env", other, "--episodes", "2", "--seeds", "1", "--policy", str(result.out)]
    )
    assert code == 2


def test_a_linear_schedule_is_written_as_rl_zoo_does_and_bad_ones_are_refused(tmp_path):
    from stable_baselines3.common.utils import LinearSchedule

    run = resolve(
        replace(
            tiny_config(tmp_path / "a", "OCC-CodeSim-v0", "maskable_ppo"),
            overrides={**TINY, "learning_rate": "lin_1e-3"},
        )
    )
    schedule = run.algo_kwargs["learning_rate"]
    assert isinstance(schedule, LinearSchedule)
    assert schedule(1.0) == pytest.approx(1e-3) and schedule(0.0) == 0.0
    assert run.hyperparams["learning_rate"] == "lin_1e-3"  # run.json keeps the notation
    for bad in ("fast", "lin_x", "lin_-1", "lin_inf"):
        with pytest.raises(TrainError, match="lin_"):
            resolve(
                replace(
                    tiny_config(tmp_path / bad, "OCC-CodeSim-v0", "maskable_ppo"),
                    overrides={**TINY, "learning_rate": bad},
                )
            )
    with pytest.raises(TrainError, match="schedules are for"):
        resolve(
            replace(
                tiny_config(tmp_path / "g", "OCC-CodeSim-v0", "grpo"),
                overrides={"learning_rate": "lin_1e-3"},
            )
        )


def test_a_run_ships_as_one_training_seed_of_its_learner(tmp_path):
    result = train(tiny_config(tmp_path / "run", "OCC-CodeSim-v0", "maskable_ppo", seed=3))
    target = ship_policy(result.out, tmp_path / "policies", "best.zip", seeded=True)
    assert target == tmp_path / "policies" / "OCC-CodeSim-v0" / "maskable_ppo" / "seed=3"
    assert json.loads((target / "run.json").read_text())["shipped_checkpoint"] == "best.zip"
    assert (target / "policy.zip").read_bytes() == (result.out / "best.zip").read_bytes()
