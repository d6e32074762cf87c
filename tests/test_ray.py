"""Scale-out on a real local Ray cluster of two nodes (``ray.cluster_utils.Cluster``): recording
and benchmarking on actors give exactly the single-machine results, a node killed mid-run
loses and duplicates nothing, and an unreachable cluster gets a clear error."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from occ_gym.bench.runner import Bench, BenchConfig, write_results
from occ_gym.cli import main as cli_main
from occ_gym.integrations.ray_scale import RayCluster, ScaleError, connect
from occ_gym.resources import POOLS_DIR
from occ_gym.tasks.pack import synthetic_pack, write_pack
from occ_gym.tiers.pool import read_pool
from occ_gym.traces.record import (
    RecordActor,
    RecordIncomplete,
    RecordPlan,
    load_nano_writers,
    record,
    record_pool,
)
from occ_gym.traces.recording import TRACES_FILE
from occ_gym.traces.table import read_table
from tests.helpers import endpoint_tier, free_port, pool_of

PLAN = RecordPlan(split="test", tasks=8, tiers=("cheap",), samples=2, repair_rounds=1, chunk_size=1)
BENCH = BenchConfig(
    env_id="OCC-CodeSim-v0",
    episodes=40,
    seeds=2,
    resamples=100,
    tune_episodes=16,
    planner_episodes=1000,
    router_episodes=1000,
)


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node of 2 logical CPUs each (this machine's cores, shared)."""
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    nodes.add_node(num_cpus=2)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, log_to_driver=False, configure_logging=False)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, verifier):
    """PLAN recorded in this process, as a single machine records it, at the torch thread
    count of an actor of one CPU (log-probabilities depend on it)."""
    out = tmp_path_factory.mktemp("local") / "t.parquet"
    return record(PLAN, out, verifier=verifier, torch_threads=1)


def rows(path) -> list[tuple]:
    """Every row but its timings, sorted: equal lists mean the same rows, none repeated
    (``read_table`` also refuses a repeated key)."""
    table = read_table(path).drop_columns(["wall_ms", "verify_ms"])
    return sorted(zip(*table.to_pydict().values(), strict=True))


def test_a_recording_on_two_nodes_equals_the_single_machine_one(cluster, reference, tmp_path):
    out = record(PLAN, tmp_path / "t.parquet", cluster=RayCluster(cluster.address, actors=2))
    assert rows(out) == rows(reference)
    assert not out.with_name(out.name + ".parts").exists()


def busy_recording_actor() -> int:
    """The pid of a recording actor's process, one mid-chunk if there is one."""
    titles = {}
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::RecordActor"):
            titles[int(proc.name)] = title
    assert titles, "no recording actor is running"
    busy = [pid for pid, title in titles.items() if title.startswith("ray::RecordActor.record")]
    return (busy or list(titles))[0]


def test_a_worker_and_a_node_killed_mid_recording_lose_and_repeat_no_row(
    cluster, reference, tmp_path, caplog
):
    doomed = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()

    def kill_a_worker_then_a_node(done: int, total: int) -> None:
        if done == 1:
            os.kill(busy_recording_actor(), signal.SIGKILL)
        if done == 3:
            cluster.remove_node(doomed)

    out = tmp_path / "t.parquet"
    with caplog.at_level(logging.WARNING, logger="occ_gym.integrations.ray_scale"):
        record(
            PLAN,
            out,
            cluster=RayCluster(cluster.address, actors=3),
            progress=kill_a_worker_then_a_node,
        )
    assert "requeued" in caplog.text, "the kill must land while an actor held a chunk"
    assert rows(out) == rows(reference)


def test_a_recording_stopped_here_resumes_on_the_cluster_at_its_thread_count(
    cluster, reference, tmp_path, verifier
):
    out = tmp_path / "t.parquet"

    def stop_after_two_chunks(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        record(PLAN, out, verifier=verifier, progress=stop_after_two_chunks, torch_threads=1)
    parts = out.with_name(out.name + ".parts")
    assert len(list(parts.glob("part-*.parquet"))) == 2
    with pytest.raises(ValueError, match="recorded at 1 torch threads, not 2"):
        record(PLAN, out, cluster=RayCluster(cluster.address), torch_threads=2)
    record(PLAN, out, cluster=RayCluster(cluster.address, actors=2, cpus_per_actor=2))
    assert rows(out) == rows(reference)  # at the parts' 1 thread, not the actors' 2 CPUs


def test_an_actor_that_cannot_start_stops_the_run_naming_its_node(cluster):
    broken = partial(load_nano_writers, ("no-such-tier",), 0.8)
    units = [(0, ([], 1, 0))]
    with pytest.raises(ScaleError, match=r"a recording actor on .* cannot start: .*no-such-tier"):
        list(RayCluster(cluster.address).run(RecordActor, (broken, {}, 1, 1), "record", units))


def test_actors_without_a_cluster_are_refused(tmp_path):
    argv = ["record", "--tasks", "2", "--out", str(tmp_path / "t.parquet")]
    assert cli_main([*argv, "--actors", "2"]) == 2
    assert cli_main([*argv, "--cpus-per-actor", "2"]) == 2
    with pytest.raises(ValueError, match="cpus_per_actor must be > 0"):
        RayCluster(cpus_per_actor=0)


def test_a_bench_on_the_cluster_writes_the_local_results_json(cluster, tmp_path):
    local = Bench(BENCH).run()
    spread = Bench(BENCH).run(cluster=RayCluster(cluster.address, actors=2))
    assert local["fits"] and list(local["fits"]) == list(spread["fits"])
    for results in (local, spread):  # how long each fit took is the one thing that may differ
        for fit in results["fits"].values():
            fit.pop("seconds")
    written = [write_results(r, tmp_path / name) for r, name in ((local, "a"), (spread, "b"))]
    assert written[0].read_bytes() == written[1].read_bytes()


def test_the_readme_commands_record_and_bench_on_the_cluster_as_one_machine_does(
    cluster, tmp_path, verifier
):
    """The README's scale-out lines after `ray start` (the fixture is that cluster), with
    budgets cut and the nano generalists' pool file in place of the served one."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("### Scale out on Ray", 1)[1].split("```bash\n", 1)[1]
    lines = [line.split("#")[0].split() for line in block.split("```", 1)[0].splitlines()]
    assert [words[:2] for words in lines] == [
        ["ray", "start"],
        ["occ-gym", "record"],
        ["occ-gym", "bench"],
    ]
    pack = synthetic_pack("test", 6, "synthetic-v1")
    write_pack(pack, tmp_path / "tasks.jsonl")
    pool_file = POOLS_DIR / "nano.toml"
    local = record_pool(
        read_pool(pool_file), pack, tmp_path / "local", 2, 1, 2, verifier, torch_threads=1
    )
    places = {
        "examples/served-nano.toml": str(pool_file),
        "tasks.jsonl": str(tmp_path / "tasks.jsonl"),
        "HEAD:6379": cluster.address,
    }
    budgets = {
        "record": ["--samples", "2", "--repair-rounds", "1", "--chunk-size", "2"],
        "bench": ["--episodes", "8", "--seeds", "2", "--tune-episodes", "8", "--resamples", "20"],
    }
    budgets["bench"] += ["--planner-episodes", "200", "--router-episodes", "200"]
    for words in lines[1:]:
        argv = [places.get(w, w.replace("runs/", f"{tmp_path}/runs/")) for w in words[1:]]
        assert cli_main([*argv, *budgets[words[1]]]) == 0, words
    assert rows(tmp_path / "runs" / "big" / TRACES_FILE) == rows(local)
    results = json.loads((tmp_path / "runs" / "big-bench" / "results.json").read_text())
    assert results["env_id"] == "OCC-Traces-v0" and len(results["entries"]) > 10


def test_chunks_an_endpoint_keeps_failing_are_reported_by_task_and_the_rest_kept(cluster, tmp_path):
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    pool = pool_of(endpoint_tier("cheap", nowhere, max_retries=0, timeout_s=2.0))
    pack = synthetic_pack("test", 4)
    with pytest.raises(RecordIncomplete, match=r"2 of 2 chunks were not recorded \(4 tasks"):
        record_pool(pool, pack, tmp_path, 1, 0, 2, cluster=RayCluster(cluster.address, actors=2))
    assert (tmp_path / "traces.parquet.parts" / "plan.json").exists()
    assert not (tmp_path / TRACES_FILE).exists()


def test_an_unreachable_cluster_is_a_clear_error_naming_its_address(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    command = ["record", "--tasks", "2", "--out", str(tmp_path / "t.parquet"), "--ray", address]
    script = f"import sys; from occ_gym.cli import main; sys.exit(main({command!r}))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert f"no Ray cluster answers at {address}" in done.stdout.replace("\n", "")
    assert not (tmp_path / "t.parquet.parts").exists()
    with pytest.raises(ScaleError, match="HOST:PORT"):
        connect("nowhere")
