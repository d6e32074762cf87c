"""OCC-Traces-v0: an env over any recorded pool. A pool of endpoint tiers records synthetic and
HumanEval problems through a real ``occ-gym serve``; the env replays that folder, passes both
env checkers, plays the same episodes live (the misses written through the server), and
``occ-gym bench`` and ``occ-gym train`` run on it."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from gymnasium.utils.env_checker import check_env

from occ_gym.cli import main as cli_main
from occ_gym.envs.code_env import RECORDED_PENALTY, RECORDED_VERIFY_SHARE
from occ_gym.resources import DEMO_RECORDING, MODELS_DIR, TRACES_DIR
from occ_gym.tasks.pack import PackProblem, humaneval_pack, read_pack, synthetic_pack, write_pack
from occ_gym.tiers.nano_card import read_card, repair_context
from occ_gym.tiers.pool import PoolSpec, TierSpec, pool_text, read_pool
from occ_gym.traces.record import record_pool
from occ_gym.traces.recording import POOL_FILE, TASKS_FILE, TRACES_FILE, Recording
from occ_gym.traces.table import TraceError
from tests.helpers import endpoint_tier, pool_of, served

TIMINGS = ("wall_ms", "verify_ms")
"""Step-info keys measured at run time (they differ between a replay and a live run)."""


def short_humaneval(count: int) -> list[PackProblem]:
    """HumanEval problems whose prompt fits the nano tiers' window with room for a repair."""
    _, tokenizer, _ = read_card(MODELS_DIR / "cheap")
    fits = [p for p in humaneval_pack() if len(repair_context(tokenizer, p.prompt, [])) < 300]
    return fits[:count]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with served() as (url, _):
        yield url


@pytest.fixture(scope="module")
def recorded(server, tmp_path_factory, verifier) -> Path:
    """Two endpoint tiers through the server on 24 synthetic and 3 HumanEval problems (three
    synthetic ones tagged test, the rest split by the hash of their ids)."""
    problems = synthetic_pack("train", 24, "synthetic-v1") + short_humaneval(3)
    problems = [
        PackProblem(
            p.task_id,
            p.prompt,
            p.entry_point,
            p.public_tests,
            p.hidden_tests,
            p.hidden_check,
            {**p.metadata, "split": "test"} if i < 3 else p.metadata,
        )
        for i, p in enumerate(problems)
    ]
    pool = pool_of(*(endpoint_tier(name, server) for name in ("expensive", "cheap")))
    out = tmp_path_factory.mktemp("recorded")
    record_pool(pool, problems, out, samples=2, repair_rounds=1, chunk_size=9, verifier=verifier)
    return out


def make(folder: Path, **kwargs) -> gym.Env:
    return gym.make("OCC-Traces-v0", traces=str(folder), **kwargs)


def play(env: gym.Env, actions: list[int] | None, seed: int) -> list[tuple]:
    """One episode: the given actions, or (``None``) random legal ones drawn from ``seed``;
    every step's observation, reward and info but the timings."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    inner = env.unwrapped
    steps = []
    for step in range(inner.max_steps):
        if actions is None:
            action = int(rng.choice(np.flatnonzero(inner.action_masks())))
        else:
            action = actions[step]
        obs, reward, terminated, truncated, info = env.step(action)
        kept = {k: v for k, v in info.items() if k not in TIMINGS}
        steps.append((action, obs.tolist(), reward, json.dumps(kept, sort_keys=True, default=str)))
        if terminated or truncated:
            break
    return steps


def assert_same_steps(ours: list[tuple], theirs: list[tuple]) -> None:
    """The same actions, rewards and infos, and observations equal up to the log-probability
    rounding that differs between batch sizes (about 1e-6; the recording wrote 9 at a time)."""
    assert [(a, r, i) for a, _, r, i in ours] == [(a, r, i) for a, _, r, i in theirs]
    for (_, obs, _, _), (_, expected, _, _) in zip(ours, theirs, strict=True):
        assert np.allclose(obs, expected, rtol=0, atol=1e-4)


# ---------------------------------------------------------------- the recorded folder


def test_the_folder_holds_the_table_its_tasks_and_its_pool(recorded):
    assert {p.name for p in recorded.iterdir()} == {TRACES_FILE, TASKS_FILE, POOL_FILE}
    recording = Recording.read(recorded)
    assert recording.tiers == ("expensive", "cheap")
    assert len(recording.problems) == 27
    assert read_pool(recorded / POOL_FILE).identity() == recording.pool
    assert recording.samples == 2 and recording.repair_rounds == 1
    costs = recording.expected_costs
    assert costs["cheap"][0] < costs["expensive"][0]


def test_the_env_has_the_pools_tiers_cheapest_first_and_costs_in_its_units(recorded):
    inner = make(recorded).unwrapped
    recording = Recording.read(recorded)
    assert inner.tier_names == ("cheap", "expensive")
    assert inner.tier_costs == tuple(recording.expected_costs[t][0] for t in inner.tier_names)
    costliest = max(inner.tier_costs)
    assert inner.verifier_cost == pytest.approx(RECORDED_VERIFY_SHARE * costliest)
    assert inner.oracle.compute_penalty == pytest.approx(RECORDED_PENALTY / costliest)
    assert inner.length_scale == 96  # the endpoint tiers' max_tokens
    assert "candidate_confidence" in inner.observation_layout.fields
    explicit = make(recorded, verifier_cost=3.0, oracle={"compute_penalty": 0.01}).unwrapped
    assert explicit.verifier_cost == 3.0 and explicit.oracle.compute_penalty == 0.01


def test_splits_follow_metadata_then_the_hash_and_val_fit_carve_train(recorded):
    ids = {
        split: [make(recorded, split=split).unwrapped.task_source.task(i).task_id for i in range(n)]
        for split in ("train", "test", "val", "fit", "all")
        for n in [len(make(recorded, split=split).unwrapped.task_source)]
    }
    assert {"synthetic-v1/train/0", "synthetic-v1/train/1", "synthetic-v1/train/2"} <= set(
        ids["test"]
    )
    assert sorted(ids["train"] + ids["test"]) == sorted(ids["all"]) and len(ids["all"]) == 27
    assert sorted(ids["val"] + ids["fit"]) == sorted(ids["train"])
    assert not set(ids["val"]) & set(ids["fit"])


def test_both_env_checkers_pass_with_warnings_as_errors(recorded):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for split in ("train", "test"):
            check_env(make(recorded, split=split).unwrapped, skip_render_check=True)
            sb3_check_env(make(recorded, split=split), warn=True)


def test_every_attempt_replays_its_recorded_row(recorded):
    env = make(recorded, split="all")
    table = pq.read_table(recorded / TRACES_FILE).to_pylist()
    rows = {(r["task_id"], r["tier"], r["sample"], r["repair_round"]): r for r in table}
    inner = env.unwrapped
    for seed in range(20):
        env.reset(seed=seed)
        for tier, name in enumerate(inner.tier_names):
            attempt = inner.peek_attempt(tier, 0, 0)
            row = rows[(inner.task.task_id, name, attempt.sample, 0)]
            assert attempt.code == row["code"] and attempt.cost == row["flops"] / 1e6
            assert (attempt.public_passed, attempt.hidden_passed) == (
                row["public_passed"],
                row["hidden_passed"],
            )


# ---------------------------------------------------------------- live mode


def partial_copy(recorded: Path, out: Path) -> Path:
    """The recording with only its cheap tier's first samples kept (metadata unchanged)."""
    shutil.copytree(recorded, out)
    table = pq.read_table(recorded / TRACES_FILE)
    keep = pc.and_(pc.equal(table.column("tier"), "cheap"), pc.equal(table.column("sample"), 0))
    pq.write_table(table.filter(keep), out / TRACES_FILE)
    return out


def test_live_mode_writes_the_misses_through_the_server_and_equals_replay(recorded, tmp_path):
    live = make(partial_copy(recorded, tmp_path / "partial"), mode="live", split="all")
    replay = make(recorded, split="all")
    try:
        for seed in range(12):
            expected = play(replay, None, seed)
            assert_same_steps(play(live, [step[0] for step in expected], seed), expected)
        written = sum(len(tier._written) for tier in live.unwrapped.tiers)
        assert written > 0, "live mode must have written attempts the table lacked"
    finally:
        live.close()
        replay.close()


def test_replay_refuses_a_table_with_gaps_and_live_mode_a_different_pool(recorded, tmp_path):
    partial = partial_copy(recorded, tmp_path / "partial")
    with pytest.raises(TraceError, match=r"no rows for tiers \['expensive'\]"):
        make(partial)
    pool = read_pool(recorded / POOL_FILE)
    warmer = replace(pool, tiers=(replace(pool.tiers[0], temperature=0.5), *pool.tiers[1:]))
    other = tmp_path / "other.toml"
    other.write_text(pool_text(warmer))
    with pytest.raises(TraceError, match=r"is not the pool that recorded.*temperature 0.8 -> 0.5"):
        make(partial, mode="live", pool=str(other))
    with pytest.raises(ValueError, match="pool= is live mode's"):
        make(recorded, pool=str(other))


def test_tasks_takes_a_pack_replayed_where_recorded_and_written_live_where_not(recorded, tmp_path):
    problems = read_pack(recorded / TASKS_FILE)
    subset = write_pack(problems[:5], tmp_path / "subset.jsonl")
    env = make(recorded, tasks=str(subset), split="all")
    assert len(env.unwrapped.task_source) == 5
    fresh = synthetic_pack("test", 2, "synthetic-v1")
    wider = write_pack([*problems[:2], *fresh], tmp_path / "wider.jsonl")
    with pytest.raises(
        TraceError, match=r"no rows for tiers \[\] or tasks \['synthetic-v1/test/0'"
    ):
        make(recorded, tasks=str(wider))
    live = make(recorded, tasks=str(wider), split="all", mode="live")
    try:
        for index in range(4):
            play_index(live, index)
        assert any(
            key[0].startswith("synthetic-v1/test/") for key in live.unwrapped.tiers[0]._written
        )
    finally:
        live.close()
    changed = replace(problems[0], prompt=problems[0].prompt + "# edited\n")
    with pytest.raises(TraceError, match="differs from the one"):
        make(recorded, tasks=str(write_pack([changed], tmp_path / "changed.jsonl")))


def play_index(env: gym.Env, index: int) -> None:
    """One episode of task ``index``: every tier once, verified, then submit."""
    env.reset(seed=index, options={"task_index": index})
    layout = env.unwrapped.action_layout
    for tier in range(layout.num_tiers):
        env.step(layout.attempt(tier))
        env.step(layout.verify)
    env.step(layout.submit)


# ---------------------------------------------------------------- cost models


PRICES = {"cheap": (2e-7, 8e-7), "expensive": (1e-6, 4e-6)}
"""Dollars per input and output token of each tier of the priced pool."""


def test_a_priced_pool_records_what_each_attempt_cost_and_the_env_charges_it(
    server, tmp_path, verifier
):
    specs = [
        endpoint_tier(name, server, input_price=inputs, output_price=outputs)
        for name, (inputs, outputs) in PRICES.items()
    ]
    pool = PoolSpec(tuple(specs), "price", "priced")
    out = tmp_path / "priced"
    problems = synthetic_pack("train", 6, "synthetic-v1")
    record_pool(pool, problems, out, samples=2, repair_rounds=1, verifier=verifier)
    rows = pq.read_table(out / TRACES_FILE).to_pylist()
    for row in rows:
        inputs, outputs = PRICES[row["tier"]]
        expected = 1e6 * (inputs * row["context_tokens"] + outputs * row["new_tokens"])
        assert row["cost"] == pytest.approx(expected, rel=1e-12)
    assert Recording.read(out).cost_unit == "1e-6 USD"
    env = make(out, split="all")
    assert env.unwrapped.cost_unit == "1e-6 USD"
    inner = env.unwrapped
    by_key = {(r["task_id"], r["tier"], r["sample"], r["repair_round"]): r for r in rows}
    for seed in range(10):
        env.reset(seed=seed)
        _, _, _, _, info = env.step(inner.action_layout.attempt(1))
        row = by_key[(inner.task.task_id, "expensive", inner.candidate.sample, 0)]
        assert info["cost"] == row["cost"] and info["tier"] == "expensive"


def test_a_latency_pool_records_each_attempts_wall_time_as_its_cost(server, tmp_path, verifier):
    pool = PoolSpec((endpoint_tier("cheap", server),), "latency", "timed")
    out = tmp_path / "timed"
    record_pool(
        pool, synthetic_pack("train", 3), out, samples=1, repair_rounds=0, verifier=verifier
    )
    rows = pq.read_table(out / TRACES_FILE).to_pylist()
    assert all(r["cost"] == pytest.approx(r["wall_ms"]) and r["cost"] > 0 for r in rows)
    assert Recording.read(out).cost_unit == "ms"


# ---------------------------------------------------------------- bad folders


def test_a_folder_that_is_not_a_recording_is_refused_naming_what_is_wrong(recorded, tmp_path):
    with pytest.raises(TraceError, match=r"holds no traces\.parquet"):
        make(tmp_path)
    suite_table = tmp_path / "suite"
    suite_table.mkdir()
    shutil.copy(TRACES_DIR / "v1" / "test.parquet", suite_table / TRACES_FILE)
    with pytest.raises(TraceError, match="is not a pool recording"):
        make(suite_table)
    edited = tmp_path / "edited"
    shutil.copytree(recorded, edited)
    problems = read_pack(edited / TASKS_FILE)
    write_pack(problems[1:], edited / TASKS_FILE)
    with pytest.raises(TraceError, match="is not the task list"):
        make(edited)
    (edited / TASKS_FILE).write_text("{not json\n")
    with pytest.raises(TraceError, match=r"tasks.jsonl cannot be read.*line 1"):
        make(edited)
    with pytest.raises(ValueError, match="cannot read task pack synthetic"):
        make(recorded, tasks="synthetic")


def test_the_folder_is_self_contained(recorded, tmp_path):
    moved = shutil.copytree(recorded, tmp_path / "elsewhere" / "run")
    assert play(make(moved), None, 3) == play(make(recorded), None, 3)


def test_the_default_recording_is_the_shipped_demo():
    inner = gym.make("OCC-Traces-v0").unwrapped
    assert inner.tier_names == ("cheap", "medium", "expensive")
    assert Recording.read(DEMO_RECORDING).samples == 4


# ---------------------------------------------------------------- bench and train


def test_bench_and_train_run_on_the_recording(recorded, tmp_path):
    traces = f"traces={json.dumps(str(recorded))}"
    bench = ["bench", "--env", "OCC-Traces-v0", "--env-kwarg", traces, "--episodes", "12"]
    bench += ["--seeds", "2", "--tune-episodes", "16", "--planner-episodes", "500"]
    bench += ["--router-episodes", "500", "--resamples", "50", "--out", str(tmp_path / "bench")]
    assert cli_main(bench) == 0
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    labels = {e["label"] for e in results["entries"]}
    assert {"FixedTier(cheap)", "FixedTier(expensive)", "HindsightOracle (upper bound)"} <= labels
    assert "--env-kwarg" in results["command"]
    assert results["config"]["env_kwargs"] == {"traces": str(recorded)}
    train = ["train", "--env", "OCC-Traces-v0", "--env-kwarg", traces, "--timesteps", "512"]
    train += ["--n-envs", "2", "--eval-episodes", "5", "--eval-every", "256"]
    train += ["--set", "n_steps=128", "--set", "batch_size=64", "--vec-env", "native"]
    assert cli_main([*train, "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["config"]["env_kwargs"] == {"traces": str(recorded)}
    policy = ["--policy", str(tmp_path / "run")]
    assert cli_main([*bench[:-1], str(tmp_path / "bench2"), *policy]) == 0
    rerun = json.loads((tmp_path / "bench2" / "results.json").read_text())
    assert any(e["label"].startswith("MaskablePPO") for e in rerun["entries"])


def test_a_bench_command_round_trips_its_env_kwargs(recorded):
    from occ_gym.bench.runner import BenchConfig

    config = BenchConfig(env_id="OCC-Traces-v0", env_kwargs={"traces": str(recorded)})
    assert f"--env-kwarg 'traces=\"{recorded}\"'" in config.command
    with pytest.raises(ValueError, match="may not set split"):
        BenchConfig(env_kwargs={"split": "train"})
    with pytest.raises(ValueError, match=r"\{'budget': 500\}: the bench fits its references"):
        BenchConfig(env_kwargs={"budget": 500, "mode": "replay"})


def test_vector_env_plays_the_recording_like_single_envs(recorded):
    from gymnasium.vector import AutoresetMode

    from tests.test_vector import play_against_single_envs

    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        assert play_against_single_envs("OCC-Traces-v0", mode, 200, 0, traces=str(recorded)) > 0


# ---------------------------------------------------------------- the README's five lines


def test_the_readme_commands_record_a_pool_then_train_and_bench_on_it(tmp_path):
    """The README's "record your own pool, then train on it", line by line, with budgets cut
    for a test: the example pool pointed at this test's server, 6 problems."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("### Your own models and tasks", 1)[1].split("```bash\n", 1)[1]
    lines = [line.split("#")[0].split() for line in block.split("```", 1)[0].splitlines()]
    assert [words[1] for words in lines] == ["pack", "serve", "record", "train", "bench"]
    example = Path(__file__).parents[1] / "examples" / "served-nano.toml"
    pool = tmp_path / "pool.toml"
    with served(tiers=("cheap", "medium", "expensive")) as (server, _):
        pool.write_text(example.read_text().replace("http://127.0.0.1:8000/v1", server))
        run_readme_lines(lines, tmp_path, pool)
    assert Recording.read(tmp_path / "runs" / "mine").tiers == ("cheap", "medium", "expensive")


def run_readme_lines(lines: list[list[str]], tmp_path: Path, pool: Path) -> None:
    budgets = {
        "pack": ["--tasks", "6"],
        "record": ["--samples", "2", "--repair-rounds", "1"],
        "train": ["--timesteps", "256", "--n-envs", "2", "--eval-episodes", "4"],
        "bench": ["--episodes", "8", "--seeds", "2", "--tune-episodes", "8"],
    }
    budgets["train"] += ["--eval-every", "128", "--set", "n_steps=64", "--set", "batch_size=64"]
    budgets["bench"] += ["--planner-episodes", "200", "--router-episodes", "200"]
    budgets["bench"] += ["--resamples", "20"]
    places = {"examples/served-nano.toml": str(pool), "tasks.jsonl": f"{tmp_path}/tasks.jsonl"}
    for words in lines:
        if words[1] == "serve":
            continue  # the server the test started
        argv = [places.get(w, w.replace("runs/", f"{tmp_path}/runs/")) for w in words[1:]]
        assert cli_main([*argv, *budgets[words[1]]]) == 0, words


def test_the_example_pool_costs_the_served_tiers_as_the_nano_cards_count():
    from occ_gym.tiers.nano_card import matmul_parameters

    pool = read_pool(Path(__file__).parents[1] / "examples" / "served-nano.toml")
    for spec in pool.tiers:
        config, _, _ = read_card(MODELS_DIR / spec.model)
        assert (spec.parameters, spec.layers, spec.d_model) == (
            matmul_parameters(config),
            config.n_layers,
            config.d_model,
        )


# ---------------------------------------------------------------- from the review


def nano_recording(out: Path, verifier, samples: int, rounds: int, models_dir: str = "") -> Path:
    """The cheap and medium nano tiers as a pool on 12 synthetic problems (no server)."""
    tiers = tuple(TierSpec(n, "nano", n, models_dir=models_dir) for n in ("cheap", "medium"))
    problems = synthetic_pack("train", 12, "synthetic-v1")
    record_pool(PoolSpec(tiers, "flops", "nano"), problems, out, samples, rounds, verifier=verifier)
    return out


def test_bench_runs_on_a_recording_without_repairs_or_second_samples(tmp_path, verifier):
    """A table with no repair rounds used to crash the findings (they asked for a repair)."""
    folder = nano_recording(tmp_path / "flat", verifier, samples=1, rounds=0)
    argv = ["bench", "--env", "OCC-Traces-v0", "--env-kwarg", f"traces={folder}"]
    argv += ["--episodes", "8", "--seeds", "2", "--tune-episodes", "8", "--resamples", "20"]
    argv += ["--planner-episodes", "200", "--router-episodes", "200"]
    assert cli_main([*argv, "--out", str(tmp_path / "bench")]) == 0


def test_live_mode_refuses_nano_weights_other_than_the_recordings(tmp_path, verifier):
    from safetensors.torch import load_file, save_file

    models = shutil.copytree(MODELS_DIR, tmp_path / "models")
    folder = nano_recording(tmp_path / "rec", verifier, 2, 1, models_dir=str(models))
    weights = models / "cheap.safetensors"
    state = load_file(str(weights))
    first = sorted(state)[0]
    state[first] = state[first] + 0.01
    save_file(state, str(weights))
    with pytest.raises(TraceError, match="weights of model cheap are not the ones"):
        make(folder, mode="live")
    assert len(make(folder).unwrapped.task_source) > 0  # replay needs no model


TAMPERINGS = {
    "zero costs": ("occ_gym.expected_costs", lambda v: {k: [0.0] for k in v}, "costs > 0"),
    "costs as a list": ("occ_gym.expected_costs", lambda v: list(v.values()), "one list per"),
    "no samples": ("occ_gym.record", lambda v: {**v, "samples": 0}, "samples = 0"),
    "a repeated tier": ("occ_gym.tiers", lambda v: [v[0], v[0]], "repeats a name"),
    "a pool without tiers": ("occ_gym.pool", lambda v: {"cost": "flops"}, "not a pool"),
}


@pytest.mark.parametrize("change", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_tampered_recording_metadata_is_refused_naming_the_field(recorded, tmp_path, change):
    key, edit, named = change
    folder = shutil.copytree(recorded, tmp_path / "tampered")
    table = pq.read_table(folder / TRACES_FILE)
    metadata = dict(table.schema.metadata)
    metadata[key.encode()] = json.dumps(edit(json.loads(metadata[key.encode()]))).encode()
    pq.write_table(table.replace_schema_metadata(metadata), folder / TRACES_FILE)
    with pytest.raises(TraceError, match=f"malformed recording metadata.*{named}"):
        make(folder)


def test_a_table_path_must_be_the_recordings_own(recorded):
    with pytest.raises(TraceError, match=r"a recording's table is its folder's traces\.parquet"):
        make(recorded / "other.parquet")


def test_path_keywords_on_the_command_line_stay_text():
    from occ_gym.train.config import parse_env_kwarg

    assert parse_env_kwarg("traces=2024-06-01") == ("traces", "2024-06-01")
    assert parse_env_kwarg("pool=123") == ("pool", "123")
    assert parse_env_kwarg("max_steps=12") == ("max_steps", 12)
