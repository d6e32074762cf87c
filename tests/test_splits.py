"""The ``val`` and ``fit`` splits carved from ``train``: disjoint, complete, and what training
chooses its checkpoint on (never ``test``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import occ_gym
from occ_gym.tasks import VALIDATION_EVERY, CarvedTaskSource, SyntheticTaskSource


def task_ids(env_id: str, split: str) -> list[str]:
    source = gym.make(env_id, split=split).unwrapped.task_source
    return [source.task(i).task_id for i in range(len(source))]


@pytest.mark.parametrize("env_id", occ_gym.ENV_IDS)
def test_val_and_fit_split_train_into_two_disjoint_parts(env_id):
    train, fit, val = (task_ids(env_id, split) for split in ("train", "fit", "val"))
    assert set(fit).isdisjoint(val)
    assert sorted(fit + val) == sorted(train)
    assert set(task_ids(env_id, "test")).isdisjoint(train)
    if env_id == "OCC-Code-v1":  # carved by program: val is about a tenth of train
        assert 0.05 < len(val) / len(train) < 0.15
    else:
        assert val == train[::VALIDATION_EVERY]


def test_v1_val_shares_no_program_with_fit_so_it_scores_like_test():
    """Carved by index, val met the programs of fit (v1 has ~1,200 programs in 2,000 tasks), so
    anything fitted on fit scored higher on val than on test."""
    source = gym.make("OCC-Code-v1", split="train").unwrapped.task_source
    programs = {
        split: {source.problem(i).reference for i in CarvedTaskSource(source, split).indices}
        for split in ("fit", "val")
    }
    assert programs["val"] and programs["fit"].isdisjoint(programs["val"])


@pytest.mark.parametrize("env_id", occ_gym.ENV_IDS)
def test_a_val_env_only_meets_val_tasks_single_and_vector(env_id):
    val = set(task_ids(env_id, "val"))
    env = gym.make(env_id, split="val")
    met = {env.reset(seed=seed)[1]["task_id"] for seed in range(60)}
    assert met <= val and len(met) > 1
    envs = gym.make_vec(env_id, 4, split="val")
    envs.reset(seed=0)
    tasks = envs.unwrapped._task
    assert all(envs.unwrapped.template.task_source.task(int(t)).task_id in val for t in tasks)
    envs.close()


def test_a_split_too_small_to_carve_is_refused_with_its_size():
    with pytest.raises(ValueError, match=r"1 task.*too few to carve 'fit'"):
        CarvedTaskSource(SyntheticTaskSource("train", 1), "fit")
    with pytest.raises(ValueError, match="cannot carve 'val' out of the 'test' split"):
        CarvedTaskSource(SyntheticTaskSource("test", 20), "val")


def test_training_chooses_its_checkpoint_without_meeting_a_test_task(tmp_path, monkeypatch):
    """best.zip was chosen on test returns; now the run trains on fit, selects on val, and
    only scores the two checkpoints on test once training is over."""
    from occ_gym.envs.code_env import OCCCodeEnv
    from occ_gym.train.ppo import TrainConfig, train

    splits: list[str] = []
    reset = OCCCodeEnv.reset

    def logged_reset(self, *, seed=None, options=None):
        splits.append(self.task_source.split)
        return reset(self, seed=seed, options=options)

    monkeypatch.setattr(OCCCodeEnv, "reset", logged_reset)
    config = TrainConfig(
        env_id="OCC-CodeSim-v0",
        out=str(tmp_path / "run"),
        timesteps=256,
        n_envs=2,
        overrides={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
        eval_episodes=4,
        eval_every=128,
    )
    record = train(config).record
    first_test = splits.index("test")
    assert set(splits[:first_test]) == {"fit", "val"}
    assert set(splits[first_test:]) == {"test"}
    assert (record["config"]["eval_split"], record["config"]["test_split"]) == ("val", "test")
    assert np.isfinite(record["final_metrics"]["best"]["mean_return"])
