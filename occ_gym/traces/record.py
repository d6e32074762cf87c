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
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

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
from occ_gym.verifier import Verifier


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
) -> Path:
    """Record ``plan`` into ``out`` (a Parquet file), resuming from parts a killed run left."""
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

    writers = [NanoWriter(model, plan.spec.temperature) for model in models]
    rounds = (plan.samples, plan.repair_rounds)
    return _record_parts(
        out, identity, metadata, plan.chunks, problems, writers, rounds, verifier, progress
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
) -> Path:
    """Record every tier of ``pool`` on ``problems`` (a task pack's) into the folder ``out``
    (``occ_gym.traces.recording``: the table, the tasks, the pool), resumably, and return the
    table's path; ``RecordIncomplete`` (after every chunk was tried) says which tasks are
    missing."""
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
    identity = {
        "pool": pool.identity(),
        "pack_sha256": digest,
        "tasks": len(problems),
        **settings,
        "models_sha256": {
            w.name: w.model.weights_sha256() for w in writers if isinstance(w, NanoWriter)
        },
    }
    metadata = {
        "occ_gym.pool": json.dumps(pool.identity()),
        "occ_gym.models_sha256": json.dumps(identity["models_sha256"]),
        "occ_gym.cost_unit": pool.cost_unit,
        "occ_gym.record": json.dumps({**settings, "pack_sha256": digest}),
        "occ_gym.tiers": json.dumps([spec.name for spec in pool.tiers]),
    }
    chunks = -(-len(problems) // chunk_size)

    def chunk_problems(chunk: int) -> list[CodeProblem]:
        return list(problems[chunk * chunk_size : (chunk + 1) * chunk_size])

    out.mkdir(parents=True, exist_ok=True)
    return _record_parts(
        out / TRACES_FILE,
        identity,
        metadata,
        chunks,
        chunk_problems,
        writers,
        (samples, repair_rounds),
        verifier,
        progress,
        before_merge=lambda table: finish_recording(out, table, list(problems), pool),
    )


def writers_for(pool: PoolSpec) -> list[Writer]:
    """One writer per tier of the pool, in its order (nano models are loaded here)."""
    return [writer_for(pool, spec.name) for spec in pool.tiers]


def _record_parts(
    out: Path,
    identity: dict,
    metadata: dict[str, str],
    chunks: int,
    problems: Callable[[int], list[CodeProblem]],
    writers: Sequence[Writer],
    rounds: tuple[int, int],
    verifier: Verifier | None,
    progress: Callable[[int, int], None] | None,
    before_merge: Callable[[pa.Table], dict[str, str]] | None = None,
) -> Path:
    """Record chunk by chunk into part files beside ``out`` (skipping those a killed run left),
    then merge them into ``out``, with the metadata ``before_merge`` adds from the merged rows;
    a chunk an endpoint keeps failing is left for a rerun."""
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    plan_file = parts / "plan.json"
    if plan_file.exists():
        try:
            recorded = json.loads(plan_file.read_text())
        except ValueError:
            recorded = None
        if recorded != json.loads(json.dumps(identity)):
            raise ValueError(
                f"{parts} holds parts of a different plan or models; remove it or match them"
            )
    else:
        temporary = plan_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(identity))
        temporary.replace(plan_file)
    failed: list[tuple[list[str], str]] = []
    owned = verifier is None
    verifier = verifier or Verifier()
    try:
        for chunk in range(chunks):
            part = parts / f"part-{chunk:05d}.parquet"
            if not part.exists():
                chunk_problems = problems(chunk)
                samples, repair_rounds = rounds
                try:
                    rows = record_chunk(chunk_problems, writers, samples, repair_rounds, verifier)
                except EndpointError as error:
                    failed.append(([p.task_id for p in chunk_problems], str(error)))
                    continue
                write_table(rows_to_table(rows), part)
            if progress is not None:
                progress(chunk + 1, chunks)
    finally:
        if owned:
            verifier.close()
    if failed:
        missing = [task for tasks, _ in failed for task in tasks]
        raise RecordIncomplete(
            f"{len(failed)} of {chunks} chunks were not recorded ({len(missing)} tasks, e.g. "
            f"{', '.join(missing[:3])}); first error: {failed[0][1]}. The other chunks are kept "
            f"in {parts}: run the same recording again to record the rest"
        )
    tables = [read_table(parts / f"part-{c:05d}.parquet") for c in range(chunks)]
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


__all__ = ["RecordIncomplete", "RecordPlan", "record", "record_chunk", "record_pool", "writers_for"]
