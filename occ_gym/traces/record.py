"""``occ-gym record``: run the nano tiers over a task split and write a Parquet trace table.

Work is cut into chunks of tasks. Each finished chunk is written as its own part file
(atomically: a temporary file renamed into place), and at the end the parts are merged into the
table, again atomically. A recording killed at any point restarts at the first chunk without a
part; every attempt's sampling seed is a hash of its key and chunks never change, so the
restarted run writes exactly the rows an uninterrupted one would (timings aside: ``wall_ms``
and ``verify_ms``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from occ_gym.tasks.synthetic import SyntheticProblem, make_problem
from occ_gym.tiers.nano import NanoModel
from occ_gym.tiers.nano_tier import AttemptRequest, run_attempts
from occ_gym.tiers.suites import V0_SUITE, NanoSuite, suite_named
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
    problems: Sequence[SyntheticProblem],
    models: Sequence[NanoModel],
    plan: RecordPlan,
    verifier: Verifier,
) -> list[TraceRow]:
    """Every tier's samples on ``problems``, then repair rounds of those that failed public."""
    rows: list[TraceRow] = []
    for model in models:
        chains: dict[tuple[str, int], tuple[SyntheticProblem, tuple[TraceRow, ...]]] = {
            (p.task_id, s): (p, ()) for p in problems for s in range(plan.samples)
        }
        for _ in range(plan.repair_rounds + 1):
            requests = [
                AttemptRequest(problem, sample, history)
                for (_, sample), (problem, history) in chains.items()
            ]
            written = run_attempts(model, requests, verifier, plan.spec.temperature)
            rows.extend(written)
            chains = {
                (row.task_id, row.sample): (request.problem, (*request.history, row))
                for request, row in zip(requests, written, strict=True)
                if row.public_passed < row.public_total
            }
            if not chains:
                break
    return rows


def record(
    plan: RecordPlan,
    out: Path,
    models: Sequence[NanoModel] | None = None,
    verifier: Verifier | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Record ``plan`` into ``out`` (a Parquet file), resuming from parts a killed run left."""
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    models = list(models) if models is not None else [NanoModel.load(name) for name in plan.tiers]
    # Parts of another plan, or written by other weights, must never mix with this run's rows.
    identity = {**_plan_json(plan), "models_sha256": {m.name: _weights_sha256(m) for m in models}}
    plan_file = parts / "plan.json"
    if plan_file.exists():
        try:
            recorded = json.loads(plan_file.read_text())
        except ValueError:
            recorded = None
        if recorded != identity:
            raise ValueError(
                f"{parts} holds parts of a different plan or models; remove it or match them"
            )
    else:
        temporary = plan_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(identity))
        temporary.replace(plan_file)
    owned = verifier is None
    verifier = verifier or Verifier()
    try:
        for chunk in range(plan.chunks):
            part = parts / f"part-{chunk:05d}.parquet"
            if not part.exists():
                first = chunk * plan.chunk_size
                problems = [
                    make_problem(plan.split, i, plan.spec.tasks)
                    for i in range(first, min(first + plan.chunk_size, plan.tasks))
                ]
                write_table(rows_to_table(record_chunk(problems, models, plan, verifier)), part)
            if progress is not None:
                progress(chunk + 1, plan.chunks)
    finally:
        if owned:
            verifier.close()
    tables = [read_table(parts / f"part-{c:05d}.parquet") for c in range(plan.chunks)]
    metadata = {
        "occ_gym.plan": json.dumps(_plan_json(plan)),
        "occ_gym.temperature": str(plan.spec.temperature),
        "occ_gym.suite": plan.suite,
        "occ_gym.models_sha256": json.dumps(identity["models_sha256"]),
    }
    merged = pa.concat_tables(tables).replace_schema_metadata(
        {**(tables[0].schema.metadata or {}), **metadata}
    )
    write_table(merged, out)
    shutil.rmtree(parts)
    return out


def _weights_sha256(model: NanoModel) -> str:
    """A digest of the weights in memory (the model may not come from a file)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _plan_json(plan: RecordPlan) -> dict:
    return {**asdict(plan), "tiers": list(plan.tiers)}


__all__ = ["RecordPlan", "record", "record_chunk"]
