"""Nano tiers: the shipped models as writers (``NanoWriter``), and a suite's tiers in the env,
replayed from a trace table or written live on a cache miss (``NanoTier``).

An attempt's sampling seed is a hash of its key and ``run_attempts`` writes both recordings and
live attempts, so a live attempt equals the recorded row with the same key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

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
from occ_gym.tiers.replay import LiveBackend, TableTier
from occ_gym.tiers.suites import V0_SUITE, NanoSuite
from occ_gym.tiers.writing import AttemptRequest, WrittenAttempt
from occ_gym.traces.table import FLOPS_PER_COST_UNIT, TraceError, TraceTable, coverage_gaps

if TYPE_CHECKING:
    from occ_gym.tiers.nano import NanoModel


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
        results = []
        for (context, dropped), attempt in zip(fitted, written, strict=True):
            flops = model.flops(len(context), attempt.new_tokens)
            results.append(
                WrittenAttempt(
                    body=attempt.body,
                    context_tokens=len(context),
                    new_tokens=attempt.new_tokens,
                    flops=flops,
                    wall_ms=wall_ms,
                    logprob_mean=attempt.logprob_mean,
                    logprob_min=attempt.logprob_min,
                    context_dropped=dropped,
                    cost=flops / FLOPS_PER_COST_UNIT,
                )
            )
        return results


def load_nano_writer(
    models_dir: Path, temperature: float, model: str, name: str = ""
) -> NanoWriter:
    """Model ``model`` from ``models_dir`` as the writer of tier ``name`` (the model's name by
    default), loaded now: live mode's writers, made on demand."""
    from occ_gym.tiers.nano import NanoModel  # torch: only when a model writes

    return NanoWriter(NanoModel.load(model, models_dir), temperature, name)


class NanoTier(TableTier):
    """A trained nano model of a suite as a ``Tier``: recorded attempts first, live writing on a
    miss (``TableTier``); ``make_nano_tiers`` refuses a replayed table with gaps."""

    def __init__(
        self,
        name: str,
        traces: TraceTable,
        task_count: int,
        live: LiveBackend | None = None,
        models_dir: Path = MODELS_DIR,
        suite: NanoSuite = V0_SUITE,
    ):
        samples = suite.samples if live else traces.samples(name)
        super().__init__(name, traces, task_count, samples, live)
        self.suite = suite
        self.models_dir = models_dir
        self.config, self.tokenizer, self.card = read_card(models_dir / name)
        self.nominal_cost = self.card["held_out"]["flops_per_fresh_attempt"] / FLOPS_PER_COST_UNIT
        self._costs: dict[tuple[str, int], float] = {}

    def problem(self, task_id: str) -> CodeProblem:
        return problem_for(task_id)

    def asset_files(self) -> list[Path]:
        return [*super().asset_files(), *self.models_dir.glob(f"{self.name}.*")]

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
    live = None
    if mode == "live":
        live = LiveBackend(partial(load_nano_writer, models_dir, suite.temperature))
    tiers = [NanoTier(name, table, task_count, live, models_dir, suite) for name in suite.tiers]
    if live is not None:
        for name in suite.tiers:
            live.writer(name)  # CheckpointError naming the file, now rather than mid-episode
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
