"""Nano tiers in the env: replayed from a trace table, or written live on a cache miss.

The same function (``run_attempts``) writes and verifies attempts for ``occ-gym record`` and for
live mode, and an attempt's sampling seed is a hash of its key, so a live attempt equals the
recorded row with the same key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from occ_gym.attempt import ANSWER_FIELDS, OUTCOME_FIELDS, Attempt
from occ_gym.resources import MODELS_DIR
from occ_gym.tasks.base import CARVED_SPLITS, CodeProblem, Task
from occ_gym.tasks.synthetic import problem_for
from occ_gym.tiers.nano_card import (
    BODY_ESTIMATE_TOKENS,
    REPAIR_ESTIMATE_TOKENS,
    TEMPERATURE,
    attempt_flops,
    attempt_seed,
    fit_repair_context,
    read_card,
    repair_context,
)
from occ_gym.tiers.suites import V0_SUITE, NanoSuite
from occ_gym.traces.table import (
    FLOPS_PER_COST_UNIT,
    TraceError,
    TraceRow,
    TraceTable,
    coverage_gaps,
)
from occ_gym.verifier import Verifier

if TYPE_CHECKING:
    from occ_gym.tiers.nano import NanoModel

WRITE_BATCH = 64


@dataclass(frozen=True)
class AttemptRequest:
    """One attempt to write: the problem, which sample, and the failed attempts before it."""

    problem: CodeProblem
    sample: int
    history: tuple[TraceRow, ...] = ()

    @property
    def repair_round(self) -> int:
        return len(self.history)

    @property
    def failures(self) -> list[tuple[str, str]]:
        """The earlier candidates of the chain with the verifier's feedback on each."""
        return [(row.code, row.feedback) for row in self.history]


@dataclass(frozen=True)
class WrittenAttempt:
    """What a writer reports for one request: the body and what writing it took."""

    body: str
    context_tokens: int
    new_tokens: int
    flops: int
    wall_ms: float
    logprob_mean: float
    logprob_min: float
    context_dropped: int


class Writer(Protocol):
    """Who writes the bodies of one tier's attempts: a nano model here, or an endpoint
    (``occ_gym.tiers.endpoint``). ``name`` is the tier's name in the trace and in each
    attempt's sampling seed (``attempt_seed``)."""

    name: str

    def write(self, requests: Sequence[AttemptRequest]) -> list[WrittenAttempt]: ...


class NanoWriter:
    """A loaded nano model as a ``Writer``: the context cut to its window, seeded sampling."""

    def __init__(self, model: NanoModel, temperature: float = TEMPERATURE, name: str = ""):
        self.model = model
        self.temperature = temperature
        self.name = name or model.name

    def write(self, requests: Sequence[AttemptRequest]) -> list[WrittenAttempt]:
        model = self.model
        fitted = [
            fit_repair_context(model.tokenizer, r.problem.prompt, r.failures, model.context_limit)
            for r in requests
        ]
        for request, (context, _) in zip(requests, fitted, strict=True):
            if len(context) > model.context_limit:
                raise ValueError(
                    f"task {request.problem.task_id}: its prompt is {len(context)} tokens, and "
                    f"tier {self.name} reads at most {model.context_limit}"
                )
        seeds = [
            attempt_seed(r.problem.task_id, self.name, r.sample, r.repair_round) for r in requests
        ]
        started = time.perf_counter()
        contexts = [context for context, _ in fitted]
        rounds = [r.repair_round for r in requests]
        written = model.write_scored(contexts, rounds, seeds, self.temperature)
        wall_ms = 1000 * (time.perf_counter() - started) / max(len(written), 1)
        return [
            WrittenAttempt(
                body=attempt.body,
                context_tokens=len(context),
                new_tokens=attempt.new_tokens,
                flops=model.flops(len(context), attempt.new_tokens),
                wall_ms=wall_ms,
                logprob_mean=attempt.logprob_mean,
                logprob_min=attempt.logprob_min,
                context_dropped=dropped,
            )
            for (context, dropped), attempt in zip(fitted, written, strict=True)
        ]


def run_attempts(
    writer: Writer, requests: Sequence[AttemptRequest], verifier: Verifier
) -> list[TraceRow]:
    """Write every request's body in batches, verify it on public and hidden tests, make rows."""
    written: list[WrittenAttempt] = []
    public, hidden = [], []
    # Batch by batch, so the sandbox verifies one batch while the next is written.
    for start in range(0, len(requests), WRITE_BATCH):
        batch = requests[start : start + WRITE_BATCH]
        bodies = writer.write(batch)
        for request, attempt in zip(batch, bodies, strict=True):
            public.append(verifier.submit(request.problem.candidate(attempt.body)))
            hidden.append(verifier.submit(request.problem.candidate(attempt.body, hidden=True)))
        written += bodies
    rows = []
    for request, attempt, public_future, hidden_future in zip(
        requests, written, public, hidden, strict=True
    ):
        verdict, hidden_verdict = public_future.result(), hidden_future.result()
        rows.append(
            TraceRow(
                task_id=request.problem.task_id,
                tier=writer.name,
                kind="repair" if request.repair_round else "fresh",
                sample=request.sample,
                repair_round=request.repair_round,
                context_tokens=attempt.context_tokens,
                new_tokens=attempt.new_tokens,
                flops=attempt.flops,
                wall_ms=attempt.wall_ms,
                verify_ms=1000 * verdict.wall_s,
                code=attempt.body,
                public_passed=verdict.tests_passed,
                public_total=verdict.tests_total,
                hidden_passed=hidden_verdict.tests_passed,
                hidden_total=hidden_verdict.tests_total,
                exit_kind=verdict.exit_kind.value,
                hidden_exit_kind=hidden_verdict.exit_kind.value,
                failure_root=""
                if verdict.passed or verdict.failure_root is None
                else verdict.failure_root.value,
                error_kind=verdict.error_kind.name.lower(),
                feedback=verdict.feedback(),
                logprob_mean=attempt.logprob_mean,
                logprob_min=attempt.logprob_min,
                public_outputs=verdict.outputs_digest(),
                context_dropped=attempt.context_dropped,
            )
        )
    return rows


class LiveBackend:
    """What live mode shares across tiers: the loaded models and one verifier, made on demand."""

    def __init__(self, models_dir: Path = MODELS_DIR):
        self.models_dir = models_dir
        self._models: dict[str, NanoModel] = {}
        self._verifier: Verifier | None = None

    def model(self, name: str) -> NanoModel:
        if name not in self._models:
            from occ_gym.tiers.nano import NanoModel  # torch: only when a model writes

            self._models[name] = NanoModel.load(name, self.models_dir)
        return self._models[name]

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            self._verifier = Verifier()
        return self._verifier

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.close()
            self._verifier = None

    def __getstate__(self) -> dict[str, object]:
        """Pickles without its sandbox processes and loaded networks (made again on demand)."""
        return {"models_dir": self.models_dir, "_models": {}, "_verifier": None}


class NanoTier:
    """A trained nano model as a ``Tier``: recorded attempts first, live writing on a miss.

    In replay mode (``live is None``) the tier serves what its table holds: the samples it
    recorded per task (``samples_per_task``) and repairs up to ``recorded_repair_rounds``, which
    the env's mask respects; ``make_nano_tiers`` refuses a table with gaps. In live mode a key
    the table lacks is written and verified, then kept for the rest of the run.
    """

    def __init__(
        self,
        name: str,
        traces: TraceTable,
        task_count: int,
        live: LiveBackend | None = None,
        models_dir: Path = MODELS_DIR,
        suite: NanoSuite = V0_SUITE,
    ):
        self.name = name
        self.suite = suite
        self.samples_per_task = suite.samples if live else traces.samples(name)
        self.recorded_repair_rounds = None if live else traces.repair_rounds()
        self.task_count = task_count
        self.traces = traces
        self.live = live
        self.models_dir = models_dir
        self.config, self.tokenizer, self.card = read_card(models_dir / name)
        self.nominal_cost = self.card["held_out"]["flops_per_fresh_attempt"] / FLOPS_PER_COST_UNIT
        self._costs: dict[tuple[str, int], float] = {}
        self._attempts: dict[tuple[str, int, int], Attempt] = {}
        self._written: dict[tuple[str, str, int, int], TraceRow] = {}

    def attempt_cost(self, task: Task, repair_round: int) -> float:
        """The cost known before the attempt: the prompt's exact token count, a typical body,
        and typical earlier candidates with feedback for a repair. The env charges the
        attempt's real FLOPs."""
        cost = self._costs.get((task.task_id, repair_round))
        if cost is None:
            prompt = len(repair_context(self.tokenizer, problem_for(task.task_id).prompt, []))
            context = prompt + repair_round * REPAIR_ESTIMATE_TOKENS
            cost = attempt_flops(self.config, context, BODY_ESTIMATE_TOKENS) / FLOPS_PER_COST_UNIT
            self._costs[(task.task_id, repair_round)] = cost
        return cost

    def row(self, task_id: str, sample: int, repair_round: int) -> TraceRow:
        key = (task_id, self.name, sample, repair_round)
        found = self.traces.row(key) or self._written.get(key)
        if found is not None:
            return found
        if self.live is None:
            raise KeyError(
                f"attempt {key} is not in the trace table {self.traces.source}; "
                "record it (occ-gym record) or use mode='live'"
            )
        history = tuple(self.row(task_id, sample, r) for r in range(repair_round))
        request = AttemptRequest(problem_for(task_id), sample, history)
        writer = NanoWriter(self.live.model(self.name), self.suite.temperature)
        (written,) = run_attempts(writer, [request], self.live.verifier)
        self._written[key] = written
        return written

    def attempt(
        self,
        task: Task,
        sample: int,
        repair_round: int,
        draws: np.ndarray,
        parent: Attempt | None,
    ) -> Attempt:
        key = (task.task_id, sample, repair_round)
        attempt = self._attempts.get(key)
        if attempt is None:
            attempt = self._attempts[key] = self.row(*key).attempt()
        return attempt

    def outcome_table(self, task_ids: list[str], rounds: int) -> dict[str, np.ndarray]:
        """Every recorded attempt of the given tasks as arrays ``(task, sample, round)``: the
        fields of ``Attempt`` the vector env reads (``OUTCOME_FIELDS``, ``ANSWER_FIELDS``); nan
        where the table has no row (the repair of a candidate that passed its public tests,
        which no episode can ask for)."""
        shape = (len(task_ids), self.samples_per_task, rounds)
        fields = (*OUTCOME_FIELDS, *ANSWER_FIELDS)
        table = {name: np.full(shape, np.nan) for name in fields}
        for t, task_id in enumerate(task_ids):
            for sample in range(self.samples_per_task):
                for r in range(rounds):
                    row = self.traces.row((task_id, self.name, sample, r))
                    if row is None:
                        continue
                    attempt = row.attempt()
                    for name in fields:
                        table[name][t, sample, r] = getattr(attempt, name)
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.close()


def traces_path(split: str, suite: NanoSuite = V0_SUITE) -> Path:
    return suite.traces_path(split)


def make_nano_tiers(
    split: str,
    mode: str = "replay",
    traces: str | Path | None = None,
    models: str | Path | None = None,
    suite: NanoSuite = V0_SUITE,
) -> list[NanoTier]:
    """The suite's nano tiers, cheapest first, over the trace table of ``split``; ``models`` is
    a folder of ``<tier>.json`` cards and ``<tier>.safetensors`` weights (the shipped ones by
    default). Live mode loads every model here, so a damaged file fails at ``gym.make``."""
    if mode not in ("replay", "live"):
        raise ValueError(f"mode must be 'replay' or 'live', got {mode!r}")
    models_dir = MODELS_DIR if models is None else Path(models)
    if not models_dir.is_dir():
        raise ValueError(f"models folder {models_dir} not found")
    if traces is None and not traces_path(split, suite).is_file():
        shipped = sorted(path.stem for path in traces_path(split, suite).parent.glob("*.parquet"))
        raise ValueError(
            f"no shipped trace table for split {split!r}: the shipped splits are {shipped}, "
            f"and {sorted(CARVED_SPLITS)} carved from train (or pass traces=PATH to replay a "
            "table of your own)"
        )
    table = TraceTable.read(Path(traces) if traces is not None else traces_path(split, suite))
    task_count = recorded_task_count(table, split, suite)
    if mode == "replay":
        check_replayable(table, suite)
    live = LiveBackend(models_dir) if mode == "live" else None
    tiers = [NanoTier(name, table, task_count, live, models_dir, suite) for name in suite.tiers]
    if live is not None:
        for name in suite.tiers:
            live.model(name)  # CheckpointError naming the file, now rather than mid-episode
    return tiers


def check_replayable(table: TraceTable, suite: NanoSuite = V0_SUITE) -> None:
    """Refuse a table that cannot serve every episode in replay mode, naming what it lacks."""
    unknown = sorted(set(table.tiers()) - set(suite.tiers))
    absent = [name for name in suite.tiers if name not in table.tiers()]
    if unknown or absent:
        raise TraceError(
            f"{table.source}: tiers {table.tiers()}, expected {list(suite.tiers)} "
            f"(unknown {unknown}, missing {absent})"
        )
    rounds = table.repair_rounds()
    for name in suite.tiers:
        samples = table.samples(name)
        gaps = coverage_gaps(table, [name], samples, rounds)
        if gaps:
            raise TraceError(
                f"{table.source}: tier {name} has {samples} samples and repairs up to round "
                f"{rounds}, but rows are missing, for example {', '.join(gaps)}; re-record "
                "the table (occ-gym record) or use mode='live'"
            )


def recorded_task_count(table: TraceTable, split: str, suite: NanoSuite = V0_SUITE) -> int:
    """n when the table covers tasks ``<prefix>/<split>/0 .. n-1``, else ``TraceError``."""
    task_ids = table.task_ids()
    prefix = suite.tasks.prefix
    expected = [f"{prefix}/{split}/{i}" for i in range(len(task_ids))]
    if not task_ids or sorted(task_ids) != sorted(expected):
        raise TraceError(
            f"{table.source}: expected tasks {prefix}/{split}/0..{len(task_ids) - 1}, "
            f"found {task_ids[:3]}... ({len(task_ids)} tasks)"
        )
    return len(task_ids)
