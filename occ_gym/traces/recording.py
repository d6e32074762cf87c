"""A recording: the folder ``occ-gym record --pool POOL --tasks PACK --out DIR`` writes.

| file             | what                                                                   |
|------------------|------------------------------------------------------------------------|
| traces.parquet   | the trace table (``occ_gym.traces.table``), its metadata naming the    |
|                  | pool, the cost unit, the samples and repair rounds recorded, the tiers |
| tasks.jsonl      | the recorded problems as a task pack (``occ_gym.tasks.pack``)          |
| pool.toml        | the pool file that recorded it (live mode's default pool)              |

The folder is self-contained: copy it to another machine and ``gym.make("OCC-Traces-v0",
traces=DIR)`` replays it there. ``Recording.read`` refuses a folder whose files disagree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from occ_gym.tasks.base import CodeProblem
from occ_gym.tasks.pack import (
    PackError,
    PackProblem,
    as_pack_problem,
    problem_record,
    read_pack,
    write_pack,
)
from occ_gym.tiers.pool import PoolSpec, pool_text
from occ_gym.traces.table import TraceError, TraceTable

TRACES_FILE = "traces.parquet"
TASKS_FILE = "tasks.jsonl"
POOL_FILE = "pool.toml"
EXPECTED_COSTS = "occ_gym.expected_costs"
"""Metadata key: each tier's mean recorded cost by repair round (what the env expects an
attempt to cost before it is made), measured on the whole table when it was recorded."""
METADATA_KEYS = (
    "occ_gym.pool",
    "occ_gym.cost_unit",
    "occ_gym.record",
    "occ_gym.tiers",
    EXPECTED_COSTS,
)
"""What a pool recording's table metadata holds (a nano suite's table holds none of them)."""


def problem_digest_text(problem: CodeProblem) -> str:
    """A problem's identity for a recording: the line a pack holds for it (sets in a fixed
    order, so the same text in every process, whatever the hash seed)."""
    return json.dumps(problem_record(as_pack_problem(problem)), sort_keys=True)


def pack_digest(problems: list[CodeProblem] | list[PackProblem]) -> str:
    digest = hashlib.sha256()
    for problem in problems:
        digest.update(problem_digest_text(problem).encode())
    return digest.hexdigest()


def finish_recording(
    folder: Path, table: pa.Table, problems: list[CodeProblem], pool: PoolSpec
) -> dict[str, str]:
    """Write the tasks and pool files beside a finished table (each atomically), and return the
    metadata measured on its rows: every tier's expected cost by repair round."""
    write_pack([as_pack_problem(p) for p in problems], folder / TASKS_FILE)
    temporary = folder / (POOL_FILE + ".tmp")
    temporary.write_text(pool_text(pool))
    temporary.replace(folder / POOL_FILE)
    traces = TraceTable(table, str(folder / TRACES_FILE))
    costs = {spec.name: mean_costs_by_round(traces, spec.name) for spec in pool.tiers}
    return {EXPECTED_COSTS: json.dumps(costs)}


def mean_costs_by_round(traces: TraceTable, tier: str) -> list[float]:
    """The mean recorded cost of ``tier``'s attempts at each repair round, from round 0 to the
    deepest with a row (empty when the tier has no fresh attempt)."""
    totals: dict[int, list[float]] = {}
    for task_id in traces.task_ids():
        for sample in range(traces.samples(tier)):
            for repair_round in range(traces.repair_rounds() + 1):
                row = traces.row((task_id, tier, sample, repair_round))
                if row is None:
                    break
                totals.setdefault(repair_round, []).append(row.attempt().cost)
    return [sum(totals[r]) / len(totals[r]) for r in range(len(totals))]


@dataclass(frozen=True)
class Recording:
    """A pool recording read back: the table, its problems, and what its metadata says."""

    folder: Path
    table: TraceTable
    problems: tuple[PackProblem, ...]
    pool: dict[str, Any]
    """The recording pool's identity (``PoolSpec.identity``)."""
    cost_unit: str
    samples: int
    """Fresh samples recorded per task and tier."""
    repair_rounds: int
    """Repair rounds recorded after a failed attempt."""
    tiers: tuple[str, ...]
    """The pool's tiers, in its file's order."""
    expected_costs: dict[str, list[float]]
    """Each tier's mean recorded cost by repair round (``EXPECTED_COSTS``)."""

    @property
    def pool_file(self) -> Path:
        return self.folder / POOL_FILE

    def problems_of(self, pack: list[PackProblem]) -> tuple[PackProblem, ...]:
        """A task pack's problems to play on this recording: any the recording holds must be
        the problem it recorded (an attempt replayed on another prompt or tests would lie)."""
        recorded = {p.task_id: problem_digest_text(p) for p in self.problems}
        for problem in pack:
            known = recorded.get(problem.task_id)
            if known is not None and known != problem_digest_text(problem):
                raise TraceError(
                    f"task {problem.task_id} of the pack differs from the one {self.folder} "
                    "recorded (its prompt, tests or metadata): give it another id"
                )
        return tuple(pack)

    @classmethod
    def read(cls, path: str | Path) -> Recording:
        """The recording in folder ``path`` (or of its ``traces.parquet``); ``TraceError`` names
        what is missing or disagrees."""
        path = Path(path)
        folder = path.parent if path.suffix == ".parquet" else path
        if not (folder / TRACES_FILE).is_file():
            raise TraceError(
                f"{folder} holds no {TRACES_FILE}: traces= is the folder `occ-gym record --pool "
                "POOL --tasks PACK --out DIR` wrote"
            )
        table = TraceTable.read(folder / TRACES_FILE)
        missing = [key for key in METADATA_KEYS if key not in table.metadata]
        if missing:
            raise TraceError(
                f"{table.source} is not a pool recording (its metadata lacks {missing}); a nano "
                "suite's table replays in OCC-Code-v0 / OCC-Code-v1 with traces=PATH"
            )
        try:
            problems = tuple(read_pack(folder / TASKS_FILE))
        except PackError as error:
            raise TraceError(f"{folder}: its {TASKS_FILE} cannot be read: {error}") from None
        try:
            settings = json.loads(table.metadata["occ_gym.record"])
            pool = json.loads(table.metadata["occ_gym.pool"])
            tiers = tuple(json.loads(table.metadata["occ_gym.tiers"]))
            samples, rounds = int(settings["samples"]), int(settings["repair_rounds"])
            recorded_digest = settings["pack_sha256"]
            expected = {
                str(name): [float(cost) for cost in costs]
                for name, costs in json.loads(table.metadata[EXPECTED_COSTS]).items()
            }
        except (ValueError, KeyError, TypeError) as error:
            raise TraceError(f"{table.source}: unreadable recording metadata ({error})") from None
        if pack_digest(list(problems)) != recorded_digest:
            raise TraceError(
                f"{folder / TASKS_FILE} is not the task list {table.source} was recorded on "
                "(its digest differs): copy the folder whole"
            )
        unpriced = [name for name in tiers if not expected.get(name)]
        if unpriced:
            raise TraceError(f"{table.source}: no expected cost recorded for tiers {unpriced}")
        unknown_tiers = sorted(set(table.tiers()) - set(tiers))
        unknown_tasks = sorted(set(table.task_ids()) - {p.task_id for p in problems})
        if unknown_tiers or unknown_tasks:
            raise TraceError(
                f"{table.source} holds rows of tiers {unknown_tiers} or tasks "
                f"{unknown_tasks[:3]} that its metadata and {TASKS_FILE} do not name"
            )
        return cls(
            folder,
            table,
            problems,
            pool,
            table.metadata["occ_gym.cost_unit"],
            samples,
            rounds,
            tiers,
            expected,
        )
