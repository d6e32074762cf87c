"""GRPO with tiny budgets: real updates, checkpoints SB3 and load_policy read, resume, and the
group-relative advantage it is named for."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import occ_gym
from occ_gym.events import read_events
from occ_gym.policies.learned import load_policy
from occ_gym.train.grpo import GRPO
from occ_gym.train.ppo import TrainConfig, TrainError, train
from tests.test_train import assert_plays_legally

TINY = {"problems": 4, "group_size": 4, "batch_size": 32, "n_epochs": 2}


def tiny_config(out, env_id: str, **changes) -> TrainConfig:
    settings = {
        "env_id": env_id,
        "algo": "grpo",
        "out": str(out),
        "timesteps": 128,
        "overrides": TINY,
        "eval_episodes": 5,
        "eval_every": 64,
        **changes,
    }
    return TrainConfig(**settings)


@pytest.fixture(scope="module", params=occ_gym.ENV_IDS)
def grpo_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"grpo-{request.param}")
    return train(tiny_config(out, request.param)), request.param


def test_grpo_learns_on_each_env_and_writes_a_complete_run(grpo_run):
    result, env_id = grpo_run
    record = json.loads((result.out / "run.json").read_text())
    assert record["algo"] == "grpo" and record["env_id"] == env_id
    assert record["timesteps_done"] >= 128 == record["hyperparams"]["n_timesteps"]
    assert record["eval_curve"] and record["eval_curve"][-1]["updates"] == result.model._n_updates
    assert record["hyperparams"]["group_size"] == 4
    for name in ("last", "best"):
        assert record["final_metrics"][name]["episodes"] == 5
    assert list((result.out / "tb").glob("run_*/events.out.tfevents.*"))
    updates = list(read_events(result.out / "events.jsonl"))
    assert [e["timesteps"] for e in updates] == [p["timesteps"] for p in record["eval_curve"]]
    assert {e["algo"] for e in updates} == {"grpo"} and updates[0]["best"]


def test_a_grpo_checkpoint_loads_and_never_takes_a_masked_action(grpo_run):
    result, env_id = grpo_run
    assert_plays_legally(
        load_policy(result.out / "best.zip"), gym.make(env_id, split="test"), 300, 5
    )


def test_grpo_resumes_from_its_checkpoint(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:  # training runs on config.torch_threads (1) and hands the caller's count back
        first = train(tiny_config(tmp_path / "a", "OCC-CodeSim-v0"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    resumed = train(
        tiny_config(
            tmp_path / "b", "OCC-CodeSim-v0", timesteps=256, resume=str(first.out / "last.zip")
        )
    )
    assert resumed.record["resumed_at"] == first.record["timesteps_done"]
    assert resumed.record["timesteps_done"] >= 256
    assert resumed.model._n_updates > first.model._n_updates
    points = [p["timesteps"] for p in resumed.record["eval_curve"]]
    assert points == sorted(points) and points[0] <= first.record["timesteps_done"]


def test_a_group_plays_one_task_and_its_advantages_centre_on_zero():
    trainer = GRPO("OCC-Code-v1", problems=3, group_size=5, seed=1)
    try:
        rollout = trainer.collect()
        first_steps = rollout.obs[:15].numpy().reshape(3, 5, -1)
        assert all((group == group[0]).all() for group in first_steps)  # same task, same start
        returns = rollout.returns.reshape(3, 5)
        centred = (returns - returns.mean(axis=1, keepdims=True)) / (
            returns.std(axis=1, keepdims=True) + 1e-8
        )
        assert np.allclose(rollout.advantages[:15].numpy(), centred.reshape(-1), atol=1e-5)
    finally:
        trainer.close()


def test_an_update_raises_the_probability_of_better_than_group_actions():
    trainer = GRPO("OCC-CodeSim-v0", problems=16, group_size=8, n_epochs=4, seed=0)
    try:
        rollout = trainer.collect()
        assert rollout.advantages.abs().sum() > 0

        def advantage_weighted_log_prob() -> float:
            with torch.no_grad():
                _, log_prob, _ = trainer.model.policy.evaluate_actions(
                    rollout.obs, rollout.actions, action_masks=rollout.masks
                )
            return float((log_prob * rollout.advantages).mean())

        before = advantage_weighted_log_prob()
        trainer.update(rollout)
        assert advantage_weighted_log_prob() > before
    finally:
        trainer.close()


def test_grpo_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        GRPO("OCC-CodeSim-v0", group_size=1)
    with pytest.raises(TrainError, match=r"takes no hyperparameter\(s\) \['n_steps'\]"):
        train(tiny_config(tmp_path, "OCC-CodeSim-v0", overrides={"n_steps": 8}))
    for key in ("seed", "split", "env_kwargs"):  # the run decides these, not --set
        with pytest.raises(TrainError, match=rf"takes no hyperparameter\(s\) \['{key}'\]"):
            train(tiny_config(tmp_path / key, "OCC-CodeSim-v0", overrides={key: 1}))
