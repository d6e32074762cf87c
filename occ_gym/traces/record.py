"""``occ-gym record``: run a suite's nano tiers over a task split, or any pool of tiers over a
task pack (``record_pool``), and write a Parquet trace table.

Work is cut into chunks of tasks. Each finished chunk is written as its own part file
(atomically: a temporary file renamed into place), and at the end the parts are merged into the
table, again atomically. A recording killed at any point restarts at the first chunk without a
part; every attempt's sampling seed is a hash of its key and chunks never change, so the
restarted run writes exactly the rows an uninterrupted one would (timings aside: ``wall_ms``
and ``verify_ms``).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import torch

from occ_gym.integrations.ray_scale import (
    RayCluster,
    UnitLost,
    connect,
    enter,
    node_id,
    node_name,
)
from occ_gym.tasks.base import CodeProblem
from occ_gym.tasks.synthetic import make_problem
from occ_gym.tiers.endpoint import EndpointError
from occ_gym.tiers.nano import NanoModel
from occ_gym.tiers.nano_tier import NanoWriter
from occ_gym.tiers.pool import PoolSpec
from occ_gym.tiers.pool_tier import writer_for
from occ_gym.tiers.suites import V0_SUITE, NanoSuite, suite_named
from occ_gym.tiers.writing import AttemptRequest, Writer, run_attempts
from occ_gym.traces.recording import TRACES_FILE, finish_recording, pack_digest
from occ_gym.traces.table import TraceRow, read_table, rows_to_table, write_table
from occ_gym.verifier import SandboxConfig, Verifier


@dataclass(frozen=True)
class RecordPlan:
    """What to record: which suite (tasks, temperature), tiers, samples and repair depth.
    ``RecordPlan.of(suite, ...)`` takes the suite's tiers, samples and repair depth."""

    split: str
    tasks: int
    tiers: tuple[str, ...] = V0_SUITE.tiers
    samples: int = V0_SUITE.samples
    repair_rounds: int = V0_SUITE.repair_rounds
    chunk_size: int = 50
    suite: str = V0_SUITE.name

    def __post_init__(self) -> None:
        for name in ("tasks", "samples", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.repair_rounds < 0:
            raise ValueError(f"repair_rounds must be >= 0, got {self.repair_rounds}")
        known = suite_named(self.suite).tiers
        unknown = set(self.tiers) - set(known)
        if unknown:
            raise ValueError(
                f"unknown tiers {sorted(unknown)}; suite {self.suite!r} has {list(known)}"
            )

    @classmethod
    def of(
        cls,
        suite: str,
        split: str,
        tasks: int,
        samples: int | None = None,
        repair_rounds: int | None = None,
        chunk_size: int = 50,
    ) -> RecordPlan:
        spec = suite_named(suite)
        return cls(
            split,
            tasks,
            spec.tiers,
            spec.samples if samples is None else samples,
            spec.repair_rounds if repair_rounds is None else repair_rounds,
            chunk_size,
            suite,
        )

    @property
    def spec(self) -> NanoSuite:
        return suite_named(self.suite)

    @property
    def chunks(self) -> int:
        return -(-self.tasks // self.chunk_size)


def record_chunk(
    problems: Sequence[CodeProblem],
    writers: Sequence[Writer],
    samples: int,
    repair_rounds: int,
    verifier: Verifier,
) -> list[TraceRow]:
    """Every tier's samples on ``problems``, then repair rounds of those that failed public."""
    rows: list[TraceRow] = []
    for writer in writers:
        chains: dict[tuple[str, int], tuple[CodeProblem, tuple[TraceRow, ...]]] = {
            (p.task_id, s): (p, ()) for p in problems for s in range(samples)
        }
        for _ in range(repair_rounds + 1):
            requests = [
                AttemptRequest(problem, sample, history)
                for (_, sample), (problem, history) in chains.items()
            ]
            written = run_attempts(writer, requests, verifier)
            rows.extend(written)
            chains = {
                (row.task_id, row.sample): (request.problem, (*request.history, row))
                for request, row in zip(requests, written, strict=True)
                if row.public_passed < row.public_total
            }
            if not chains:
                break
    return rows


class RecordIncomplete(RuntimeError):
    """Some chunks could not be recorded (an endpoint kept failing): the table is not written,
    the recorded parts are kept, and running the same recording again resumes."""


def record(
    plan: RecordPlan,
    out: Path,
    models: Sequence[NanoModel] | None = None,
    verifier: Verifier | None = None,
    progress: Callable[[int, int], None] | None = None,
    cluster: RayCluster | None = None,
    torch_threads: int | None = None,
) -> Path:
    """Record ``plan`` into ``out`` (a Parquet file), resuming from parts a killed run left;
    on ``cluster``, chunks run on Ray actors that each load the models once. Torch runs
    ``torch_threads`` threads (``_record_parts`` says which by default)."""
    given = models is not None
    models = list(models) if models is not None else [NanoModel.load(name) for name in plan.tiers]
    # Parts of another plan, or written by other weights, must never mix with this run's rows.
    identity = {**_plan_json(plan), "models_sha256": {m.name: m.weights_sha256() for m in models}}
    metadata = {
        "occ_gym.plan": json.dumps(_plan_json(plan)),
        "occ_gym.temperature": str(plan.spec.temperature),
        "occ_gym.suite": plan.suite,
        "occ_gym.models_sha256": json.dumps(identity["models_sha256"]),
    }

    def problems(chunk: int) -> list[CodeProblem]:
        first = chunk * plan.chunk_size
        last = min(first + plan.chunk_size, plan.tasks)
        return [make_problem(plan.split, i, plan.spec.tasks) for i in range(first, last)]

    temperature = plan.spec.temperature
    rounds = (plan.samples, plan.repair_rounds)
    if cluster is not None:
        make_writers = (
            partial(nano_writers, models, temperature)
            if given
            else partial(load_nano_writers, plan.tiers, temperature)
        )
        runner: ChunkRunner = RayChunks(cluster, make_writers, identity["models_sha256"], rounds)
    else:
        runner = LocalChunks(nano_writers(models, temperature), rounds, verifier)
    return _record_parts(
        out, identity, metadata, plan.chunks, problems, runner, progress, torch_threads
    )


def record_pool(
    pool: PoolSpec,
    problems: Sequence[CodeProblem],
    out: Path,
    samples: int = 4,
    repair_rounds: int = 2,
    chunk_size: int = 20,
    verifier: Verifier | None = None,
    progress: Callable[[int, int], None] | None = None,
    cluster: RayCluster | None = None,
    torch_threads: int | None = None,
) -> Path:
    """Record every tier of ``pool`` on ``problems`` (a task pack's) into the folder ``out``
    (``occ_gym.traces.recording``: the table, the tasks, the pool), resumably, and return the
    table's path; ``RecordIncomplete`` (after every chunk was tried) says which tasks are
    missing. On ``cluster``, chunks run on Ray actors that each own the pool's writers."""
    for name, value in (("samples", samples), ("chunk_size", chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if repair_rounds < 0:
        raise ValueError(f"repair_rounds must be >= 0, got {repair_rounds}")
    pool.check_keys()  # an unset key variable fails here, before any request
    writers = writers_for(pool)
    if not problems:
        raise ValueError("record_pool needs at least one problem")
    digest = pack_digest(list(problems))
    settings = {"samples": samples, "repair_rounds": repair_rounds, "chunk_size": chunk_size}
    models_sha256 = {w.name: w.model.weights_sha256() for w in writers if isinstance(w, NanoWriter)}
    identity = {
        "pool": pool.identity(),
        "pack_sha256": digest,
        "tasks": len(problems),
        **settings,
        "models_sha256": models_sha256,
    }
    metadata = {
        "occ_gym.pool": json.dumps(pool.identity()),
        "occ_gym.models_sha256": json.dumps(models_sha256),
        "occ_gym.cost_unit": pool.cost_unit,
        "occ_gym.record": json.dumps({**settings, "pack_sha256": digest}),
        "occ_gym.tiers": json.dumps([spec.name for spec in pool.tiers]),
    }
    chunks = -(-len(problems) // chunk_size)

    def chunk_problems(chunk: int) -> list[CodeProblem]:
        return list(problems[chunk * chunk_size : (chunk + 1) * chunk_size])

    rounds = (samples, repair_rounds)
    if cluster is not None:
        runner: ChunkRunner = RayChunks(cluster, partial(writers_for, pool), models_sha256, rounds)
    else:
        runner = LocalChunks(writers, rounds, verifier)
    out.mkdir(parents=True, exist_ok=True)
    return _record_parts(
        out / TRACES_FILE,
        identity,
        metadata,
        chunks,
        chunk_problems,
        runner,
        progress,
        torch_threads,
        before_merge=lambda table: finish_recording(out, table, list(problems), pool),
    )


def writers_for(pool: PoolSpec) -> list[Writer]:
    """One writer per tier of the pool, in its order (nano models are loaded here)."""
    return [writer_for(pool, spec.name) for spec in pool.tiers]


def nano_writers(models: Sequence[NanoModel], temperature: float) -> list[Writer]:
    return [NanoWriter(model, temperature) for model in models]


def load_nano_writers(tiers: Sequence[str], temperature: float) -> list[Writer]:
    """The shipped nano tiers' writers, loaded here (on a Ray actor: on its node)."""
    return nano_writers([NanoModel.load(name) for name in tiers], temperature)


ChunkJob = tuple[int, list[CodeProblem]]
"""A chunk's index and its problems."""
ChunkOutcome = tuple[int, "list[TraceRow] | Exception"]
"""A chunk's index and its rows, or what stopped it."""


class ChunkRunner(Protocol):
    """Records chunks with torch at a given thread count, yielding each as it finishes."""

    @property
    def default_threads(self) -> int:
        """The torch thread count of a new recording that names none."""

    def __call__(self, jobs: list[ChunkJob], torch_threads: int) -> Iterator[ChunkOutcome]: ...


@dataclass
class LocalChunks:
    """Records chunks one after another in this process (torch at the recording's thread
    count while it does; the process's own count is restored after)."""

    writers: Sequence[Writer]
    rounds: tuple[int, int]
    verifier: Verifier | None = None

    @property
    def default_threads(self) -> int:
        return torch.get_num_threads()

    def __call__(self, jobs: list[ChunkJob], torch_threads: int) -> Iterator[ChunkOutcome]:
        owned = self.verifier is None
        verifier = self.verifier or Verifier()
        before = torch.get_num_threads()
        torch.set_num_threads(torch_threads)
        try:
            for chunk, problems in jobs:
                try:
                    yield chunk, record_chunk(problems, self.writers, *self.rounds, verifier)
                except EndpointError as error:
                    yield chunk, error
        finally:
            torch.set_num_threads(before)
            if owned:
                verifier.close()


class RecordActor:
    """A Ray actor recording chunks with its own writers (nano models loaded once, on its
    node) and verifier (as many sandboxes as the CPUs it reserves, with uids of its own);
    ``ready()`` says why it cannot, naming its node."""

    def __init__(
        self,
        make_writers: Callable[[], list[Writer]],
        models_sha256: dict[str, str],
        torch_threads: int,
        sandboxes: int,
        cwd: str,
        index: int,
    ):
        self.problem: str | None = None
        try:
            enter(cwd)
            torch.set_num_threads(torch_threads)
            self.writers = make_writers()
            found = {
                w.name: w.model.weights_sha256() for w in self.writers if isinstance(w, NanoWriter)
            }
            differ = sorted(
                name
                for name in {*found, *models_sha256}
                if found.get(name) != models_sha256.get(name)
            )
            if differ:
                raise ValueError(
                    f"the nano weights of tier(s) {differ} differ from the driver's: install "
                    "the same occ-gym and models on every node"
                )
            uids = SandboxConfig().child_uid_base + (index + 1) * ACTOR_UID_STRIDE
            self.verifier = Verifier(SandboxConfig(workers=sandboxes, child_uid_base=uids))
        except Exception as error:  # reported by ready(), so the driver can name the node
            self.problem = f"a recording actor on {node_name()} cannot start: {error}"

    def ready(self) -> tuple[str | None, str]:
        return self.problem, node_id()

    def record(
        self, problems: Sequence[CodeProblem], samples: int, repair_rounds: int
    ) -> list[TraceRow]:
        return record_chunk(problems, self.writers, samples, repair_rounds, self.verifier)


ACTOR_UID_STRIDE = 64
"""Uids between two recording actors' sandboxes (one node's actors never share a uid, so
one's candidates cannot exhaust another's process limit)."""


@dataclass
class RayChunks:
    """Records chunks on ``RecordActor``s of ``cluster`` (joined when made, so an unreachable
    one fails before anything is written); actors run torch at the recording's thread
    count, by default the CPUs each reserves."""

    cluster: RayCluster
    make_writers: Callable[[], list[Writer]]
    models_sha256: dict[str, str]
    rounds: tuple[int, int]

    def __post_init__(self) -> None:
        connect(self.cluster.address)

    @property
    def default_threads(self) -> int:
        return max(1, int(self.cluster.cpus_per_actor))

    def __call__(self, jobs: list[ChunkJob], torch_threads: int) -> Iterator[ChunkOutcome]:
        units = [(chunk, (problems, *self.rounds)) for chunk, problems in jobs]
        sandboxes = max(1, math.ceil(self.cluster.cpus_per_actor))
        args = (self.make_writers, self.models_sha256, torch_threads, sandboxes)
        for chunk, outcome in self.cluster.run(RecordActor, args, "record", units):
            yield int(chunk), outcome  # type: ignore[call-overload]


def _record_parts(
    out: Path,
    identity: dict,
    metadata: dict[str, str],
    chunks: int,
    problems: Callable[[int], list[CodeProblem]],
    runner: ChunkRunner,
    progress: Callable[[int, int], None] | None,
    torch_threads: int | None = None,
    before_merge: Callable[[pa.Table], dict[str, str]] | None = None,
) -> Path:
    """Record the chunks without a part file beside ``out`` (those a killed run left are
    kept), each as its own part file, then merge them into ``out``, with the metadata
    ``before_merge`` adds from the merged rows; a chunk an endpoint keeps failing (or whose
    actors keep dying) is left for a rerun.

    Log-probabilities differ in float32's last bits between torch thread counts, so the
    count is part of the recording: ``torch_threads``, else the one its parts were recorded
    at, else the runner's default (this process's count; on Ray, the CPUs per actor). A run
    resumed anywhere therefore writes exactly the rows of an uninterrupted one."""
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    plan_file = parts / "plan.json"
    if plan_file.exists():
        try:
            recorded = json.loads(plan_file.read_text())
        except ValueError:
            recorded = None
        recorded_threads = recorded.pop("torch_threads", None) if recorded else None
        if recorded != json.loads(json.dumps(identity)):
            raise ValueError(
                f"{parts} holds parts of a different plan or models; remove it or match them"
            )
        if torch_threads is not None and recorded_threads not in (None, torch_threads):
            raise ValueError(
                f"{parts} holds parts recorded at {recorded_threads} torch threads, not "
                f"{torch_threads}: resume at {recorded_threads} (log-probabilities depend on it)"
            )
        threads = recorded_threads or torch_threads or runner.default_threads
    else:
        threads = torch_threads or runner.default_threads
        temporary = plan_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({**identity, "torch_threads": threads}))
        temporary.replace(plan_file)

    def part(chunk: int) -> Path:
        return parts / f"part-{chunk:05d}.parquet"

    missing = [chunk for chunk in range(chunks) if not part(chunk).exists()]
    done = chunks - len(missing)
    if progress is not None and done:
        progress(done, chunks)
    failed: list[tuple[list[str], str]] = []
    jobs = [(chunk, problems(chunk)) for chunk in missing]
    tasks = {chunk: [p.task_id for p in chunk_problems] for chunk, chunk_problems in jobs}
    for chunk, outcome in runner(jobs, threads):
        if isinstance(outcome, EndpointError | UnitLost):
            failed.append((tasks[chunk], str(outcome)))
            continue
        if isinstance(outcome, Exception):
            raise outcome
        write_table(rows_to_table(outcome), part(chunk))
        done += 1
        if progress is not None:
            progress(done, chunks)
    if failed:
        missing_tasks = [task for chunk_tasks, _ in failed for task in chunk_tasks]
        raise RecordIncomplete(
            f"{len(failed)} of {chunks} chunks were not recorded ({len(missing_tasks)} tasks, "
            f"e.g. {', '.join(missing_tasks[:3])}); first error: {failed[0][1]}. The other "
            f"chunks are kept in {parts}: run the same recording again to record the rest"
        )
    tables = [read_table(part(c)) for c in range(chunks)]
    merged = pa.concat_tables(tables)
    extra = before_merge(merged) if before_merge is not None else {}
    merged = merged.replace_schema_metadata(
        {**(tables[0].schema.metadata or {}), **metadata, **extra}
    )
    write_table(merged, out)
    shutil.rmtree(parts)
    return out


def _plan_json(plan: RecordPlan) -> dict:
    return {**asdict(plan), "tiers": list(plan.tiers)}


__all__ = [
    "ChunkJob",
    "ChunkRunner",
    "LocalChunks",
    "RayChunks",
    "RecordActor",
    "RecordIncomplete",
    "RecordPlan",
    "record",
    "record_chunk",
    "record_pool",
    "writers_for",
]
