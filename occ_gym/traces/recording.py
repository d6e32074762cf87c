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
import math
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
    "occ_gym.models_sha256",
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
    models_sha256: dict[str, str]
    """The weights' digest of each nano-kind tier (live mode must write with the same)."""

    def spec(self, tier: str) -> dict[str, Any]:
        """Tier ``tier``'s settings in the recording pool's identity."""
        return next(spec for spec in self.pool["tiers"] if spec["name"] == tier)

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
        """The recording in folder ``path`` (or its ``traces.parquet``); ``TraceError`` names
        what is missing, malformed or disagrees."""
        path = Path(path)
        if path.suffix == ".parquet" and path.name != TRACES_FILE:
            raise TraceError(f"{path}: a recording's table is its folder's {TRACES_FILE}")
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
            fields = _metadata_fields(table.metadata)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise TraceError(f"{table.source}: malformed recording metadata: {error}") from None
        pool, tiers, samples, rounds, digest, expected, weights = fields
        if pack_digest(list(problems)) != digest:
            raise TraceError(
                f"{folder / TASKS_FILE} is not the task list {table.source} was recorded on "
                "(its digest differs): copy the folder whole"
            )
        unknown_tiers = sorted(set(table.tiers()) - set(tiers))
        unknown_tasks = sorted(set(table.task_ids()) - {p.task_id for p in problems})
        if unknown_tiers or unknown_tasks:
            raise TraceError(
                f"{table.source} holds rows of tiers {unknown_tiers} or tasks "
                f"{unknown_tasks[:3]} that its metadata and {TASKS_FILE} do not name"
            )
        beyond = [t for t in table.tiers() if table.samples(t) > samples]
        if beyond or table.repair_rounds() > rounds:
            raise TraceError(
                f"{table.source} holds more samples (tiers {beyond}) or repair rounds "
                f"({table.repair_rounds()}) than its metadata says were recorded "
                f"({samples} samples, {rounds} rounds)"
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
            weights,
        )


def _metadata_fields(
    metadata: dict[str, str],
) -> tuple[dict[str, Any], tuple[str, ...], int, int, str, dict[str, list[float]], dict[str, str]]:
    """The recording metadata's fields, each checked for its type and range (``ValueError``
    naming the first that is not)."""
    settings = json.loads(metadata["occ_gym.record"])
    pool = json.loads(metadata["occ_gym.pool"])
    tiers = json.loads(metadata["occ_gym.tiers"])
    costs = json.loads(metadata[EXPECTED_COSTS])
    weights = json.loads(metadata["occ_gym.models_sha256"])
    if not isinstance(tiers, list) or not tiers or not all(isinstance(t, str) for t in tiers):
        raise ValueError("occ_gym.tiers is not a non-empty list of tier names")
    if len(set(tiers)) != len(tiers):
        raise ValueError(f"occ_gym.tiers repeats a name: {tiers}")
    if not isinstance(pool, dict) or not isinstance(pool.get("tiers"), list):
        raise ValueError("occ_gym.pool is not a pool identity (cost and tiers)")
    if [spec.get("name") for spec in pool["tiers"]] != tiers:
        raise ValueError(f"occ_gym.pool names other tiers than occ_gym.tiers {tiers}")
    samples, rounds = settings["samples"], settings["repair_rounds"]
    for name, value, least in (("samples", samples, 1), ("repair_rounds", rounds, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"occ_gym.record {name} = {value!r}, expected an int >= {least}")
    if not isinstance(costs, dict) or sorted(costs) != sorted(tiers):
        raise ValueError(f"{EXPECTED_COSTS} does not hold one list per tier of {tiers}")
    for name, values in costs.items():
        ok = isinstance(values, list) and values
        if not ok or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            for v in values
        ):
            raise ValueError(f"{EXPECTED_COSTS} of tier {name} is not a list of costs > 0")
    if not isinstance(weights, dict) or not all(isinstance(v, str) for v in weights.values()):
        raise ValueError("occ_gym.models_sha256 is not a digest per nano tier")
    digest = settings["pack_sha256"]
    if not isinstance(digest, str):
        raise ValueError("occ_gym.record pack_sha256 is not a digest")
    expected = {str(k): [float(v) for v in values] for k, values in costs.items()}
    return pool, tuple(tiers), samples, rounds, digest, expected, dict(weights)
