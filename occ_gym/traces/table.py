"""Trace tables: recorded attempts of code-model tiers, one Parquet row per attempt.

A row is keyed by ``(task_id, tier, sample, repair_round)``: sample ``s`` of a tier on a task is
a fresh attempt (round 0), and round ``r`` repairs round ``r - 1`` of the same sample with the
verifier's feedback on it. Rows exist for a repair only when the attempt before it failed its
public tests (REPAIR follows a failed VERIFY). A table is a pre-filled cache for the env: replay
reads attempts from it, live mode generates the ones it lacks.

| column            | type    | meaning                                                          |
|-------------------|---------|------------------------------------------------------------------|
| task_id           | string  | ``synthetic/<split>/<index>``                                    |
| tier              | string  | ``cheap``, ``medium`` or ``expensive``                           |
| kind              | string  | ``fresh`` (round 0) or ``repair``                                |
| sample            | int16   | which fresh sample the chain started from                        |
| repair_round      | int8    | 0 for a fresh attempt, r for the r-th repair                     |
| context_tokens    | int32   | tokens the model read (prompt, earlier candidates, feedback)     |
| new_tokens        | int32   | tokens it wrote (the body and its end token)                     |
| flops             | int64   | matmul FLOPs of the attempt (``nano.attempt_flops``)             |
| wall_ms           | float32 | generation time, amortised over the batch it ran in              |
| verify_ms         | float32 | wall time of the sandboxed run on the public tests (VERIFY)      |
| code              | string  | the body the model wrote                                         |
| public_passed     | int8    | public tests passed (of ``public_total``)                        |
| public_total      | int8    |                                                                  |
| hidden_passed     | int8    | hidden tests passed (of ``hidden_total``)                        |
| hidden_total      | int8    |                                                                  |
| exit_kind         | string  | ``Verdict.exit_kind`` on the public tests                        |
| hidden_exit_kind  | string  | ``Verdict.exit_kind`` on the hidden tests                        |
| failure_root      | string  | root category of the public failure ("" when it passed)          |
| error_kind        | string  | the ``ErrorKind`` VERIFY reports, lower case                     |
| feedback          | string  | the verifier's feedback on the public tests (REPAIR's input)     |
| logprob_mean      | float32 | mean log-probability of the written tokens under the tier (nan:  |
|                   |         | the tier reports none)                                           |
| logprob_min       | float32 | log-probability of the least likely written token (nan: none)    |
| public_outputs    | string  | digest of what the candidate returned on the public inputs ("" |
|                   |         | when a test did not return): equal digests = agreeing candidates |
| context_dropped   | int8    | earlier failed attempts of the chain the context left out to fit |
|                   |         | the model's window (oldest first; -1: not recorded)              |
| cost              | float64 | what the attempt cost in the table's unit (metadata              |
|                   |         | ``occ_gym.cost_unit``; the nano suites: flops / 1e6)             |

Older tables still read: version 2's missing answer-side columns come back as nan, nan and "",
versions 2 and 3 lack ``context_dropped``, which comes back as -1: "not recorded", and
versions 2 to 4 (all nano suites' tables) lack ``cost``, which comes back as flops / 1e6.
``python -m occ_gym.traces.upgrade PATH`` rewrites a nano table as version 4, recomputing each
repair's context from the recorded candidates and feedback (and refusing a table where that
does not reproduce the recorded ``context_tokens``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from occ_gym.attempt import Attempt, ErrorKind, outputs_key

TRACE_VERSION = "5"
"""2 added ``verify_ms``; 3 the answer-side signals (``logprob_mean``, ``logprob_min``,
``public_outputs``); 4 ``context_dropped``; 5 ``cost``."""
READABLE_VERSIONS = ("2", "3", "4", TRACE_VERSION)
TRACE_SCHEMA = pa.schema(
    [
        ("task_id", pa.string()),
        ("tier", pa.string()),
        ("kind", pa.string()),
        ("sample", pa.int16()),
        ("repair_round", pa.int8()),
        ("context_tokens", pa.int32()),
        ("new_tokens", pa.int32()),
        ("flops", pa.int64()),
        ("wall_ms", pa.float32()),
        ("verify_ms", pa.float32()),
        ("code", pa.string()),
        ("public_passed", pa.int8()),
        ("public_total", pa.int8()),
        ("hidden_passed", pa.int8()),
        ("hidden_total", pa.int8()),
        ("exit_kind", pa.string()),
        ("hidden_exit_kind", pa.string()),
        ("failure_root", pa.string()),
        ("error_kind", pa.string()),
        ("feedback", pa.string()),
        ("logprob_mean", pa.float32()),
        ("logprob_min", pa.float32()),
        ("public_outputs", pa.string()),
        ("context_dropped", pa.int8()),
        ("cost", pa.float64()),
    ]
)
NOT_RECORDED = {"logprob_mean": float("nan"), "logprob_min": float("nan"), "public_outputs": ""}
NOT_RECORDED["context_dropped"] = -1
"""What an older table's missing columns read as."""
KEY_COLUMNS = ("task_id", "tier", "sample", "repair_round")
KINDS = {"fresh", "repair"}
FLOPS_PER_COST_UNIT = 1e6
"""The env's cost unit for nano tiers: one million matmul FLOPs."""


class TraceError(ValueError):
    """A trace file is missing, truncated, corrupt, or breaks the schema."""


@dataclass(frozen=True)
class TraceRow:
    """One recorded attempt, with everything the env and the event log need."""

    task_id: str
    tier: str
    kind: str
    sample: int
    repair_round: int
    context_tokens: int
    new_tokens: int
    flops: int
    wall_ms: float
    verify_ms: float
    code: str
    public_passed: int
    public_total: int
    hidden_passed: int
    hidden_total: int
    exit_kind: str
    hidden_exit_kind: str
    failure_root: str
    error_kind: str
    feedback: str
    logprob_mean: float = float("nan")
    logprob_min: float = float("nan")
    public_outputs: str = ""
    context_dropped: int = -1
    cost: float = math.nan
    """What the attempt cost, in the table's cost unit (``occ_gym.cost_unit``; a million FLOPs
    for the nano suites)."""

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.task_id, self.tier, self.sample, self.repair_round)

    def attempt(self) -> Attempt:
        """The env's view of the row."""
        return attempt_of(lambda name: getattr(self, name))


ATTEMPT_COLUMNS = {
    name: name
    for name in (
        "sample",
        "repair_round",
        "public_passed",
        "public_total",
        "hidden_passed",
        "hidden_total",
        "cost",
        "code",
        "feedback",
        "verify_ms",
        "wall_ms",
        "logprob_mean",
        "logprob_min",
        "public_outputs",
        "context_dropped",
    )
} | {"tokens_in": "context_tokens", "tokens_out": "new_tokens"}
"""Each ``Attempt`` field a row gives as it is, and the column it comes from (``error_kind``
is converted to ``ErrorKind``)."""


def attempt_of(column: Callable[[str], Any]) -> Attempt:
    """The ``Attempt`` of a recorded row, reading each of its columns by name (a ``TraceRow``'s
    fields, or a ``TraceTable``'s columns at one index)."""
    fields = {name: column(source) for name, source in ATTEMPT_COLUMNS.items()}
    return Attempt(error_kind=ErrorKind[column("error_kind").upper()], **fields)


def rows_to_table(rows: list[TraceRow], metadata: dict[str, str] | None = None) -> pa.Table:
    columns = {name: [getattr(row, name) for row in rows] for name in TRACE_SCHEMA.names}
    schema = TRACE_SCHEMA.with_metadata(
        {"occ_gym.trace_version": TRACE_VERSION, **(metadata or {})}
    )
    return pa.Table.from_pydict(columns, schema=schema)


def write_table(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically: a reader sees the old file or the whole new one."""
    temporary = path.with_name(path.name + ".tmp")
    pq.write_table(table, temporary, compression="zstd", compression_level=9)
    temporary.replace(path)


def read_table(path: Path) -> pa.Table:
    """Read and validate a trace file; any problem raises ``TraceError`` naming the file."""
    if not path.exists():
        raise TraceError(f"trace file {path} not found")
    if path.is_dir():
        raise TraceError(f"{path} is a directory, not a trace file (a .parquet table)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise TraceError(f"cannot read trace file {path}: {error}") from error
    table = upgraded(table, path)
    validate_table(table, path)
    return table


def upgraded(table: pa.Table, path: Path | str) -> pa.Table:
    """An older table with the columns it lacks added: as "not recorded" (``NOT_RECORDED``),
    and ``cost`` as its FLOPs in millions (every older table is a nano suite's); others as they
    are."""
    version = (table.schema.metadata or {}).get(b"occ_gym.trace_version", b"").decode()
    if version not in READABLE_VERSIONS[:-1]:
        return table
    missing = [name for name in NOT_RECORDED if name not in table.schema.names]
    if version == "2" and len(missing) != len(NOT_RECORDED):
        return table  # a version 2 table with some of version 3's columns: validation refuses
    rows = table.num_rows
    for name in missing:
        field = TRACE_SCHEMA.field(name)
        table = table.append_column(field, pa.array([NOT_RECORDED[name]] * rows, field.type))
    if "cost" not in table.schema.names and "flops" in table.schema.names:
        flops = pc.cast(table.column("flops"), pa.float64())
        table = table.append_column(
            TRACE_SCHEMA.field("cost"), pc.divide(flops, FLOPS_PER_COST_UNIT)
        )
    metadata = {**(table.schema.metadata or {}), b"occ_gym.trace_version": TRACE_VERSION.encode()}
    return table.replace_schema_metadata({**metadata, b"occ_gym.upgraded_from": version.encode()})


def validate_table(table: pa.Table, path: Path | str) -> None:
    """Check the schema, the version and the key's uniqueness."""
    version = (table.schema.metadata or {}).get(b"occ_gym.trace_version", b"").decode()
    if version not in READABLE_VERSIONS:
        raise TraceError(
            f"{path}: trace version {version!r}, expected one of {list(READABLE_VERSIONS)}"
        )
    table = upgraded(table, path)
    expected = [(f.name, f.type) for f in TRACE_SCHEMA]
    found = [(f.name, f.type) for f in table.schema]
    if found != expected:
        raise TraceError(f"{path}: columns {found} do not match the trace schema {expected}")
    if table.num_rows and table.group_by(list(KEY_COLUMNS)).aggregate([]).num_rows != len(table):
        raise TraceError(f"{path}: a (task_id, tier, sample, repair_round) key repeats")
    allowed = {"kind": KINDS, "error_kind": {kind.name.lower() for kind in ErrorKind}}
    for column, values in allowed.items():
        unknown = set(table.column(column).unique().to_pylist()) - values
        if unknown:
            raise TraceError(f"{path}: column {column} holds unknown values {sorted(unknown)}")
    _check_ranges(table, path)


_NON_NEGATIVE = (
    "sample",
    "repair_round",
    "context_tokens",
    "new_tokens",
    "flops",
    "wall_ms",
    "verify_ms",
    "public_passed",
    "hidden_passed",
    "cost",
)


def _check_ranges(table: pa.Table, path: Path | str) -> None:
    """Every value in its range: counts and costs >= 0, totals >= 1, passed <= total, a fresh
    attempt at round 0 and a repair after it, no missing or non-finite value."""
    if not table.num_rows:
        return
    for name in TRACE_SCHEMA.names:
        nulls = table.column(name).null_count
        if nulls:
            raise TraceError(f"{path}: column {name} has {nulls} missing values")
    problems = {f"{name} < 0": pc.less(table.column(name), 0) for name in _NON_NEGATIVE}
    for name in ("wall_ms", "verify_ms", "cost"):
        problems[f"{name} not finite"] = pc.invert(pc.is_finite(table.column(name)))
    for name in ("logprob_mean", "logprob_min"):  # nan is "not recorded"
        problems[f"{name} > 0"] = pc.greater(table.column(name), 0)
    problems["logprob_min > logprob_mean"] = pc.greater(
        table.column("logprob_min"), table.column("logprob_mean")
    )
    for total in ("public_total", "hidden_total"):
        problems[f"{total} < 1"] = pc.less(table.column(total), 1)
        passed = total.replace("total", "passed")
        problems[f"{passed} > {total}"] = pc.greater(table.column(passed), table.column(total))
    dropped = table.column("context_dropped")
    problems["context_dropped < -1"] = pc.less(dropped, -1)
    problems["context_dropped >= repair_round"] = pc.and_(
        pc.greater(dropped, 0), pc.greater_equal(dropped, table.column("repair_round"))
    )
    fresh = pc.equal(table.column("kind"), "fresh")
    first = pc.equal(table.column("repair_round"), 0)
    problems["kind disagrees with repair_round"] = pc.not_equal(fresh, first)
    for problem, flags in problems.items():
        count = pc.sum(pc.cast(flags, pa.int64())).as_py() or 0
        if count:
            at = pc.index(flags, True).as_py()
            key = tuple(table.column(name)[at].as_py() for name in KEY_COLUMNS)
            raise TraceError(f"{path}: {count} rows have {problem} (the first: {key})")


def coverage_gaps(table: TraceTable, tiers: list[str], samples: int, rounds: int) -> list[str]:
    """What the env would ask for and ``table`` lacks: for every task and tier, fresh samples
    ``0 .. samples - 1``, and each repair up to ``rounds`` of an attempt that failed its public
    tests. Empty when the table serves every episode; else the first missing keys."""
    missing = []
    for task_id in table.task_ids():
        for tier in tiers:
            for sample in range(samples):
                for repair_round in range(rounds + 1):
                    passed = table.passes_public((task_id, tier, sample, repair_round))
                    if passed is None:
                        missing.append(f"{(task_id, tier, sample, repair_round)}")
                        break
                    if passed:
                        break  # no episode repairs a candidate that passed
                if len(missing) >= 3:
                    return missing
    return missing


class TraceTable:
    """Recorded attempts looked up by key: the env's pre-filled cache."""

    def __init__(self, table: pa.Table, source: str = "<memory>"):
        table = upgraded(table, source)
        validate_table(table, source)
        self.source = source
        self.metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        self._columns = table.to_pydict()
        keys = zip(*(self._columns[name] for name in KEY_COLUMNS), strict=True)
        self._index = {key: i for i, key in enumerate(keys)}
        self._rows: dict[int, TraceRow] = {}

    @classmethod
    def read(cls, path: Path) -> TraceTable:
        return cls(read_table(path), str(path))

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def row(self, key: tuple[str, str, int, int]) -> TraceRow | None:
        index = self._index.get(key)
        if index is None:
            return None
        row = self._rows.get(index)
        if row is None:
            row = TraceRow(**{name: self._columns[name][index] for name in TRACE_SCHEMA.names})
            self._rows[index] = row
        return row

    def attempt(self, key: tuple[str, str, int, int]) -> Attempt | None:
        """``row(key).attempt()``, read straight off the columns (no ``TraceRow`` built: the
        replay path of every first visit to an attempt)."""
        index = self._index.get(key)
        if index is None:
            return None
        columns = self._columns
        return attempt_of(lambda name: columns[name][index])

    def passes_public(self, key: tuple[str, str, int, int]) -> bool | None:
        """Whether the attempt at ``key`` passed its public tests (None: no such row)."""
        index = self._index.get(key)
        if index is None:
            return None
        return self._columns["public_passed"][index] == self._columns["public_total"][index]

    def task_ids(self) -> list[str]:
        return list(dict.fromkeys(self._columns["task_id"]))

    def attempt_arrays(
        self, tier: str, task_ids: list[str], samples: int, rounds: int
    ) -> dict[str, np.ndarray]:
        """The numbers of ``TraceRow.attempt`` for every recorded attempt of ``tier`` on
        ``task_ids``, as float arrays ``(task, sample, round)`` keyed by ``Attempt`` field
        (``OUTCOME_FIELDS`` and ``ANSWER_FIELDS``); nan where the table has no row. Computed on
        the columns, not row by row (a v1 table's 240,000 rows in well under a second)."""
        columns = self._columns
        where = {task_id: t for t, task_id in enumerate(task_ids)}
        mine = [i for i, name in enumerate(columns["tier"]) if name == tier]
        position = np.array([where.get(columns["task_id"][i], -1) for i in mine], dtype=np.int64)
        sample = np.array([columns["sample"][i] for i in mine], dtype=np.int64)
        repair_round = np.array([columns["repair_round"][i] for i in mine], dtype=np.int64)
        keep = (position >= 0) & (sample < samples) & (repair_round < rounds)
        rows = np.array(mine, dtype=np.int64)[keep]
        index = (position[keep], sample[keep], repair_round[keep])

        def column(name: str) -> np.ndarray:
            values = columns[name]
            return np.array([values[i] for i in rows], dtype=float)

        def mapped(name: str, convert: Callable[[str], float]) -> np.ndarray:
            values = columns[name]
            table = {value: convert(value) for value in {values[i] for i in rows}}
            return np.array([table[values[i]] for i in rows], dtype=float)

        found = {
            name: column(name)
            for name in (
                "public_passed",
                "public_total",
                "hidden_passed",
                "hidden_total",
                "cost",
                "wall_ms",
                "verify_ms",
                "logprob_mean",
                "logprob_min",
            )
        }
        found["tokens_out"] = column("new_tokens")
        found["tokens"] = column("context_tokens") + found["tokens_out"]
        found["error_kind"] = mapped("error_kind", lambda kind: ErrorKind[kind.upper()])
        found["outputs_key"] = mapped("public_outputs", outputs_key)
        shape = (len(task_ids), samples, rounds)
        arrays = {}
        for name, values in found.items():
            array = np.full(shape, np.nan)
            array[index] = values
            arrays[name] = array
        return arrays

    def tiers(self) -> list[str]:
        return list(dict.fromkeys(self._columns["tier"]))

    def samples(self, tier: str) -> int:
        """Fresh samples recorded per task for ``tier``: one more than the largest index."""
        pairs = zip(self._columns["sample"], self._columns["tier"], strict=True)
        indices = [sample for sample, name in pairs if name == tier]
        return max(indices, default=-1) + 1

    def repair_rounds(self) -> int:
        """The deepest repair round the table holds."""
        return max(self._columns["repair_round"], default=0)
