"""Every action the mask allows executes, and a trace table that cannot serve it is refused.

Regression tests for issue 14's first finding: ``max_steps=12`` let the mask offer a fourth
REPAIR the traces do not hold, a table recorded with fewer samples or cut by rows failed
mid-episode, and ``public_total=0`` or negative FLOPs broke the step.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from occ_gym.tiers.nano_tier import traces_path
from occ_gym.traces.table import TraceError, read_table, write_table
from occ_gym.wrappers import TruncationInfo


def play_mask_legal(env: gym.Env, episodes: int, seed: int) -> int:
    """Random mask-legal actions for ``episodes`` episodes; the number of steps taken."""
    rng = np.random.default_rng(seed)
    steps = 0
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            action = int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
            _, _, terminated, truncated, _ = env.step(action)
            done, steps = terminated or truncated, steps + 1
    return steps


@pytest.mark.parametrize("env_id", ["OCC-Code-v0", "OCC-CodeSim-v0"])
@pytest.mark.parametrize("max_steps", range(2, 17))
def test_every_mask_legal_action_executes(env_id, max_steps):
    env = gym.make(env_id, max_steps=max_steps)
    assert play_mask_legal(env, episodes=12, seed=max_steps) > 0
    env.close()


@pytest.mark.parametrize("env_id", ["OCC-Code-v0", "OCC-CodeSim-v0"])
@pytest.mark.parametrize("mode", ["native", "sync"])
def test_vector_envs_execute_every_mask_legal_action_at_max_steps_12(env_id, mode):
    kwargs = {"vectorization_mode": "sync"} if mode == "sync" else {}
    envs = gym.make_vec(env_id, num_envs=4, max_steps=12, **kwargs)
    rng = np.random.default_rng(12)
    envs.reset(seed=0)
    for _ in range(300):
        masks = np.stack(envs.call("action_masks")) if mode == "sync" else envs.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])
        envs.step(actions)
    envs.close()


def shipped(split: str = "test") -> pa.Table:
    return read_table(traces_path(split))


def first_tasks(table: pa.Table, count: int, split: str = "test") -> pa.Table:
    wanted = pa.array([f"synthetic/{split}/{i}" for i in range(count)])
    return table.filter(pc.is_in(table.column("task_id"), value_set=wanted))


def replay_of(tmp_path, keep, **kwargs) -> gym.Env:
    """OCC-Code-v0 replaying the shipped table's first 40 test tasks, rows where ``keep``."""
    table = first_tasks(shipped(), 40)
    path = tmp_path / "subset.parquet"
    write_table(table.filter(keep(table)), path)
    return gym.make("OCC-Code-v0", split="test", traces=str(path), **kwargs)


def test_a_table_with_two_samples_serves_every_episode(tmp_path):
    env = replay_of(tmp_path, lambda t: pc.less(t.column("sample"), 2), max_steps=16)
    assert env.unwrapped.tiers[0].samples_per_task == 2
    assert play_mask_legal(env, episodes=60, seed=3) > 0


def test_a_table_with_shallower_repairs_caps_the_mask(tmp_path):
    env = replay_of(tmp_path, lambda t: pc.less_equal(t.column("repair_round"), 1), max_steps=16)
    assert env.unwrapped.executor.repair_limit == 1
    assert play_mask_legal(env, episodes=60, seed=4) > 0


def test_live_mode_repairs_as_deep_as_max_steps_allows(tmp_path):
    """The table holds rounds 0-3; live mode writes and verifies the rounds beyond."""
    keep_all = lambda t: pc.is_valid(t.column("sample"))  # noqa: E731
    env = replay_of(tmp_path, keep_all, mode="live", max_steps=16)
    layout, deepest = env.unwrapped.action_layout, 0
    assert env.unwrapped.executor.repair_limit == 7  # one ATTEMPT, then 7 x (VERIFY, REPAIR)
    for episode in range(6):
        env.reset(seed=episode)
        env.step(layout.attempt("cheap"))
        repairs, done = 0, False
        while not done:
            mask = env.unwrapped.action_masks()
            action = next(a for a in (layout.verify, layout.repair, layout.submit) if mask[a])
            repairs += action == layout.repair
            _, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        deepest = max(deepest, repairs)
    assert deepest == 7
    env.close()


def replace_column(table: pa.Table, name: str, values) -> pa.Table:
    index = table.schema.get_field_index(name)
    column = pa.array(values, type=table.schema.field(name).type)
    return table.set_column(index, table.schema.field(name), column)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("drop one row", "rows are missing"),
        ("public_total 0", "public_total < 1"),
        ("negative flops", "flops < 0"),
        ("passed over total", "hidden_passed > hidden_total"),
        ("repair marked fresh", "kind disagrees with repair_round"),
        ("unknown tier", "tiers"),
    ],
)
def test_a_table_that_cannot_serve_the_env_is_refused_at_make(tmp_path, damage, message):
    table = first_tasks(shipped(), 20)
    n = table.num_rows
    if damage == "drop one row":
        table = pa.concat_tables([table.slice(0, 5), table.slice(6)])
    elif damage == "public_total 0":
        table = replace_column(table, "public_total", [0, *table["public_total"].to_pylist()[1:]])
    elif damage == "negative flops":
        table = replace_column(table, "flops", [-1] * n)
    elif damage == "passed over total":
        table = replace_column(table, "hidden_passed", [99] * n)
    elif damage == "repair marked fresh":
        table = replace_column(table, "kind", ["fresh"] * n)
    else:
        tiers = table["tier"].to_pylist()
        table = replace_column(table, "tier", ["huge" if t == "cheap" else t for t in tiers])
    path = tmp_path / "damaged.parquet"
    write_table(table, path)
    with pytest.raises(TraceError, match=message) as raised:
        gym.make("OCC-Code-v0", split="test", traces=str(path))
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("env_id", ["OCC-Code-v0", "OCC-CodeSim-v0"])
def test_evaluation_works_under_gymnasium_time_limit(env_id):
    """evaluate() died with KeyError('hidden_pass') when TimeLimit, not the env, truncated."""
    from occ_gym.baselines import HeuristicOCC
    from occ_gym.evaluation import evaluate

    limited = gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, max_episode_steps=2))
    result = evaluate(HeuristicOCC(limited), limited, episodes=20)
    assert result.episodes == 20 and result.truncation_rate > 0
    own = gym.make(env_id, max_steps=2)
    own.reset(seed=0)
    own.step(0)
    *_, truncated, final = own.step(0)
    assert truncated and set(final) >= set(own.unwrapped.truncation_summary())


@pytest.mark.parametrize("env_id", ["OCC-Code-v0", "OCC-CodeSim-v0"])
def test_the_final_info_has_the_same_keys_whoever_truncates(env_id):
    """Under gym.make's TimeLimit the final info lacked outcome, hidden_pass and the rest:
    TruncationInfo, outside it, adds them."""

    def final_info(env: gym.Env) -> tuple[dict, float]:
        env.reset(seed=3)
        total = 0.0
        while True:
            _, reward, terminated, truncated, info = env.step(0)
            total += float(reward)
            if terminated or truncated:
                assert truncated and not terminated
                return info, total

    own_info, own_return = final_info(gym.make(env_id, max_steps=3))
    limited_info, limited_return = final_info(TruncationInfo(gym.make(env_id, max_episode_steps=3)))
    assert set(limited_info) == set(own_info)
    assert limited_info["outcome"] == own_info["outcome"] == "truncated"
    assert limited_info["compute"] == own_info["compute"]
    assert limited_return == own_return
    vector = gym.make_vec(
        env_id, 2, vectorization_mode="sync", max_episode_steps=3, wrappers=[TruncationInfo]
    )
    vector.reset(seed=3)
    for _ in range(3):
        *_, truncated, infos = vector.step(np.zeros(2, dtype=int))
    assert truncated.all() and set(own_info) <= set(infos)
    vector.close()


@pytest.mark.parametrize("mode", ["native", "sync"])
def test_make_vec_takes_max_episode_steps(mode):
    kwargs = {"vectorization_mode": "sync"} if mode == "sync" else {}
    envs = gym.make_vec("OCC-CodeSim-v0", num_envs=2, max_episode_steps=2, **kwargs)
    envs.reset(seed=0)
    _, _, _, truncated, _ = envs.step(np.zeros(2, dtype=int))
    assert not truncated.any()
    _, _, terminated, truncated, _ = envs.step(np.zeros(2, dtype=int))
    assert (truncated & ~terminated).all()
    envs.close()
    with pytest.raises(ValueError, match="max_episode_steps"):
        gym.make_vec("OCC-CodeSim-v0", num_envs=2, max_episode_steps=0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"split": "dev"}, ValueError, r"split 'dev'.*\['test', 'train'\].*'val'.*traces=PATH"),
        ({"traces": "/nonexistent/t.parquet"}, TraceError, r"/nonexistent/t\.parquet not found"),
        ({"traces": "/tmp"}, TraceError, "is a directory"),
        ({"max_steps": 10**6}, ValueError, "max_steps must be <= 64"),
    ],
)
def test_bad_arguments_name_the_problem_once(kwargs, error, message):
    with pytest.raises(error, match=message) as raised:
        gym.make("OCC-Code-v0", **kwargs)
    text = str(raised.value)
    assert all(text.count(part) <= 1 for part in ("/nonexistent/t.parquet", "dev.parquet"))


def test_replay_mode_never_imports_torch():
    """gym.make("OCC-Code-v0") imported torch (1.5-2 s, ~35 s to start subproc training)."""
    import subprocess
    import sys

    script = (
        "import sys, gymnasium as gym, occ_gym\n"
        "env = gym.make('OCC-Code-v0')\nenv.reset(seed=0)\nenv.step(0)\n"
        "envs = gym.make_vec('OCC-Code-v0', num_envs=2)\nenvs.reset(seed=0)\n"
        "print(sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


BOUNDARY_KWARGS = [
    {"split": "test"},
    {"split": "val"},
    {"split": "fit"},
    {"max_steps": 2},
    {"max_steps": 64},
    {"verifier_cost": 0.0},
    {"budget": 1e-3},  # below every action's cost: only ABSTAIN is left
    {"budget": 1e9},
    {"oracle": {"compute_penalty": 0.0}},
    {"render_mode": "ansi"},
]


@pytest.mark.parametrize("env_id", ["OCC-Code-v0", "OCC-CodeSim-v0"])
@pytest.mark.parametrize("kwargs", BOUNDARY_KWARGS, ids=lambda k: ",".join(map(str, k.items())))
def test_every_documented_argument_at_a_boundary_plays_mask_legal_episodes(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    assert play_mask_legal(env, episodes=15, seed=7) > 0
    if kwargs.get("render_mode") == "ansi":
        assert "task" in env.render()
    env.close()


@pytest.mark.parametrize("mode", ["native", "sync"])
@pytest.mark.parametrize(
    "kwargs", [{"max_steps": 2}, {"verifier_cost": 0.0}, {"split": "test"}, {"split": "val"}]
)
def test_vector_envs_play_boundary_arguments(mode, kwargs):
    extra = {"vectorization_mode": "sync"} if mode == "sync" else {}
    envs = gym.make_vec("OCC-Code-v0", num_envs=3, **kwargs, **extra)
    rng = np.random.default_rng(1)
    envs.reset(seed=0)
    for _ in range(100):
        masks = np.stack(envs.call("action_masks")) if mode == "sync" else envs.action_masks()
        envs.step(np.array([rng.choice(np.flatnonzero(mask)) for mask in masks]))
    envs.close()


def test_a_models_folder_is_validated_at_make(tmp_path):
    import shutil

    from occ_gym.resources import MODELS_DIR
    from occ_gym.tiers.nano_card import CheckpointError

    with pytest.raises(ValueError, match=r"models folder .* not found"):
        gym.make("OCC-Code-v0", models=str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="apply to nano tiers"):
        gym.make("OCC-CodeSim-v0", models=str(tmp_path))
    shutil.copytree(MODELS_DIR, tmp_path / "models")
    damaged = tmp_path / "models" / "medium.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    assert gym.make("OCC-Code-v0", models=str(tmp_path / "models")) is not None  # replay: cards
    with pytest.raises(CheckpointError, match=r"medium\.safetensors"):
        gym.make("OCC-Code-v0", mode="live", models=str(tmp_path / "models"))


def test_a_live_env_pickles_after_a_live_attempt(tmp_path):
    import pickle

    table = first_tasks(shipped(), 3)
    table = table.filter(pc.equal(table.column("tier"), "cheap"))
    path = tmp_path / "cheap-only.parquet"
    write_table(table, path)
    env = gym.make("OCC-Code-v0", split="test", traces=str(path), mode="live")
    env.reset(seed=0)
    layout = env.unwrapped.action_layout
    env.step(layout.attempt("expensive"))  # not in the table: written and verified live
    copy = pickle.loads(pickle.dumps(env))
    copy.reset(seed=0)
    _, _, _, _, info = copy.step(layout.attempt("expensive"))
    assert info["tier"] == "expensive"
    copy.close()
    env.close()
