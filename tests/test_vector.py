"""The native vector env: the same episodes as N single envs, batched masks, SB3 training."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from sb3_contrib import MaskablePPO

import occ_gym
from occ_gym.attempt import Attempt, ErrorKind
from occ_gym.envs.rules import FINAL_INFO_KEYS
from occ_gym.envs.vector_env import OCCVectorEnv
from occ_gym.integrations.sb3 import SB3VecEnv, make_sb3_vec_env
from occ_gym.tasks.base import Task
from occ_gym.tiers.simulated import make_simulated_tiers
from occ_gym.traces.record import RecordPlan, record

N = 6


@pytest.fixture(scope="module", params=occ_gym.ENV_IDS)
def env_id(request) -> str:
    return request.param


def play_against_single_envs(
    env_id: str, mode: AutoresetMode, steps: int, seed: int, **env_kwargs: Any
) -> int:
    """Step a vector env and N single envs with the same random legal actions; return how many
    episodes ended. Fails at the first difference."""
    venv = gym.make_vec(env_id, num_envs=N, split="test", autoreset_mode=mode, **env_kwargs)
    singles = [gym.make(env_id, split="test", **env_kwargs) for _ in range(N)]
    obs, _ = venv.reset(seed=seed)
    assert np.array_equal(obs, np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]))
    rng = np.random.default_rng(seed)
    pending, episodes = np.zeros(N, dtype=bool), 0
    for step in range(steps):
        masks = venv.unwrapped.action_masks()
        assert masks.shape == (N, venv.single_action_space.n) and masks.dtype == bool
        actions = np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])
        obs, reward, terminated, truncated, info = venv.step(actions)
        for i, env in enumerate(singles):
            if pending[i]:  # NEXT_STEP: this step reset sub-env i and ignored its action
                expected, r, te, tr = env.reset()[0], 0.0, False, False
            else:
                assert np.array_equal(masks[i], env.unwrapped.action_masks())
                expected, r, te, tr, single_info = env.step(int(actions[i]))
            if (te or tr) and mode == AutoresetMode.SAME_STEP:
                assert np.array_equal(info["final_obs"][i], expected), (step, i)
                expected = env.reset()[0]
            assert np.array_equal(obs[i], expected), (step, i)
            assert reward[i] == r and terminated[i] == te and truncated[i] == tr, (step, i)
            if te or tr:
                episodes += 1
                assert set(single_info) >= set(FINAL_INFO_KEYS)
                for key in FINAL_INFO_KEYS:
                    ours, theirs = info[key], single_info[key]
                    if key == "score":
                        assert {k: ours[k][i] for k in theirs} == theirs, (step, i)
                    else:
                        assert np.array_equal(ours[i], theirs), (step, i, key)
        next_step = mode == AutoresetMode.NEXT_STEP
        pending = (terminated | truncated) if next_step else np.zeros(N, dtype=bool)
    return episodes


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_the_vector_env_equals_n_single_envs_step_for_step(env_id, mode):
    assert play_against_single_envs(env_id, mode, steps=400, seed=11) > 100


def test_make_vec_returns_the_native_env_with_batched_spaces(env_id):
    venv = gym.make_vec(env_id, num_envs=N)
    assert isinstance(venv.unwrapped, OCCVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    single = gym.make(env_id)
    assert venv.single_observation_space == single.observation_space
    assert venv.observation_space.shape == (N, *single.observation_space.shape)
    assert venv.action_space.shape == (N,)
    obs, _ = venv.reset(seed=0)
    assert obs.dtype == np.float32 and venv.observation_space.contains(obs)
    for _ in range(50):  # the batched space samples legal actions given the batched masks
        masks = venv.unwrapped.action_masks()
        venv.step(venv.action_space.sample(mask=tuple(masks.astype(np.int8))))
    synced = gym.make_vec(env_id, num_envs=2, vectorization_mode="sync")
    assert type(synced).__name__ == "SyncVectorEnv"  # the other modes still work


def test_seeding_repeats_and_distinguishes_runs():
    def trajectory(seed: int) -> list[np.ndarray]:
        venv = gym.make_vec("OCC-CodeSim-v0", num_envs=N)
        observations = [venv.reset(seed=seed)[0]]
        for _ in range(20):
            masks = venv.unwrapped.action_masks()
            observations.append(venv.step(masks.argmax(axis=1))[0])
        return observations

    first, again, other = trajectory(3), trajectory(3), trajectory(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_live_mode_writes_all_sub_envs_misses_in_one_batch_and_equals_single_envs(
    tmp_path, verifier, monkeypatch
):
    """Over a table holding only the cheap tier, every other tier's attempt is written live:
    the vector env writes each step's misses of a tier in one batch, and every step equals
    single live envs (log-probabilities, hence confidences, to float32's last bits)."""
    from occ_gym.tiers import replay

    plan = replace(
        RecordPlan.of("nano-v1", "test", 4, samples=1, repair_rounds=0), tiers=("cheap",)
    )
    small = record(plan, tmp_path / "v1-cheap.parquet", verifier=verifier)
    batches: list[int] = []
    run_attempts = replay.run_attempts
    monkeypatch.setattr(
        replay,
        "run_attempts",
        lambda writer, requests, v: (
            batches.append(len(requests)) or run_attempts(writer, requests, v)
        ),
    )
    kwargs = {"split": "test", "mode": "live", "traces": str(small), "max_steps": 4}
    venv = gym.make_vec("OCC-Code-v1", num_envs=3, **kwargs)
    singles = [gym.make("OCC-Code-v1", **kwargs) for _ in range(3)]
    try:
        obs, _ = venv.reset(seed=4)
        expected = np.stack([env.reset(seed=4 + i)[0] for i, env in enumerate(singles)])
        assert np.array_equal(obs, expected)
        layout = venv.unwrapped.action_layout
        script = [layout.attempt("medium-filters"), layout.verify, layout.repair, layout.submit]
        for action in script:
            masks = venv.unwrapped.action_masks()
            actions = np.where(masks[:, action], action, layout.submit)
            del batches[:]
            obs, reward, terminated, truncated, _ = venv.step(actions)
            vector_batches = list(batches)
            for i, env in enumerate(singles):
                theirs = env.step(int(actions[i]))
                assert np.allclose(obs[i], theirs[0], atol=1e-5), (action, i)
                assert reward[i] == pytest.approx(theirs[1])
                assert (terminated[i], truncated[i]) == theirs[2:4]
            if action == script[0]:
                assert len(vector_batches) == 1 and vector_batches[0] > 1  # not one per sub-env
    finally:
        venv.close()
        for env in singles:
            env.close()


def test_final_info_of_running_sub_envs_is_empty_and_a_failed_step_changes_nothing():
    venv = OCCVectorEnv(3, tiers="simulated", tasks="simulated")
    venv.reset(seed=0)
    layout = venv.action_layout
    venv.step(np.array([0, 0, 0]))
    _, _, _, _, info = venv.step(np.array([layout.submit, 0, 0]))
    assert info["outcome"].tolist() == ["submitted", "", ""]
    assert info["submitted_tier"].tolist()[1:] == [None, None]
    assert info["_outcome"].tolist() == [True, False, False]
    before = (venv._steps.copy(), venv._tier_attempts.copy(), venv.action_masks())
    rows = len(venv._features) * venv._rounds  # a replayed tier of one sample, its rows gone
    venv._replay[0] = np.full((rows, len(venv._fields)), np.nan)
    venv._batched[0] = None
    with pytest.raises(KeyError, match="no row"):
        venv.step(np.array([0, 0, 0]))
    assert np.array_equal(venv._steps, before[0])
    assert np.array_equal(venv._tier_attempts, before[1])
    assert np.array_equal(venv.action_masks(), before[2])


def test_bad_actions_name_the_sub_env():
    venv = OCCVectorEnv(3, tiers="simulated", tasks="simulated")
    venv.reset(seed=0)
    submit = venv.action_layout.submit
    with pytest.raises(ValueError, match=r"sub-env 1: action .*SUBMIT.* is illegal now"):
        venv.step(np.array([0, submit, 0]))
    with pytest.raises(ValueError, match="outside Discrete"):
        venv.step(np.array([0, 99, 0]))
    with pytest.raises(ValueError, match="3 integers"):
        venv.step(np.array([0, 0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"budget": 500.0}, "budget"), ({"render_mode": "ansi"}, "render_mode")],
)
def test_what_only_the_single_env_supports_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make_vec("OCC-CodeSim-v0", num_envs=2, **kwargs)


def test_batched_simulation_equals_the_single_attempt_row_by_row():
    tiers = make_simulated_tiers()
    rng = np.random.default_rng(0)
    rows = 2000
    difficulty = rng.random(rows)
    public, hidden, prompt = (
        rng.integers(1, 4, rows),
        rng.integers(4, 12, rows),
        rng.integers(50, 300, rows),
    )
    draws, rounds = rng.random((rows, 4)), rng.integers(0, 4, rows)
    parents = rng.choice([1, 3, 4, 5], rows)
    for tier in tiers:
        batch = tier.outcomes(difficulty, public, hidden, prompt, draws, rounds, parents)
        for j in range(rows):
            task = Task(
                "t",
                np.zeros(4, dtype=np.float32),
                int(public[j]),
                int(hidden[j]),
                int(prompt[j]),
                float(difficulty[j]),
            )
            parent = Attempt(0, 0, 0, 1, 0, 1, ErrorKind(int(parents[j])), 0.0, 0, 0)
            single = tier.attempt(task, 0, int(rounds[j]), draws[j], parent if rounds[j] else None)
            for name in ("public_passed", "hidden_passed", "error_kind", "cost", "tokens"):
                assert batch[name][j] == getattr(single, name), (tier.name, j, name)


def test_maskable_ppo_trains_on_the_sb3_adapter():
    env = make_sb3_vec_env("OCC-CodeSim-v0", 4, split="train")
    assert isinstance(env, SB3VecEnv)
    code = make_sb3_vec_env("OCC-Code-v0", 2)  # once built the simulated env, silently
    assert code.venv.template.tier_names == ("cheap", "medium", "expensive")
    assert code.venv.template.task_source.split == "train"
    with pytest.raises(ValueError, match="unknown env id"):
        make_sb3_vec_env("CartPole-v9", 2)
    model = MaskablePPO("MlpPolicy", env, n_steps=32, batch_size=64, seed=0, device="cpu")
    model.learn(256)
    assert model.num_timesteps == 256
    with pytest.raises(ValueError, match="SAME_STEP"):
        SB3VecEnv(OCCVectorEnv(2, tiers="simulated", tasks="simulated"))
