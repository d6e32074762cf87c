"""The tiers of ``OCC-Traces-v0``: any recorded pool (``occ_gym.traces.recording``) replayed,
or in live mode its misses written through the pool's own tiers (endpoints or nano models).

Each tier replays its table's rows as they were recorded: the cost the env charges is the
recorded one, in the pool's unit. Before an attempt the env needs its cost (the broker masks
what a budget cannot pay), and only the prompt is known then, so a tier expects the mean
recorded cost of its attempts at that repair round over the whole table, measured when it was
recorded (``Recording.expected_costs``): the same for every task, so it reveals nothing about
one, and the same in replay and live mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from occ_gym.resources import MODELS_DIR
from occ_gym.tasks.base import CodeProblem, Task
from occ_gym.tasks.pack import PackProblem, problems_by_id
from occ_gym.tiers.nano_card import MAX_NEW_TOKENS
from occ_gym.tiers.pool import PoolSpec, read_pool
from occ_gym.tiers.replay import LiveBackend, TableTier
from occ_gym.tiers.writing import Writer
from occ_gym.traces.recording import TASKS_FILE, Recording
from occ_gym.traces.table import TraceError, coverage_gaps


def writer_for(pool: PoolSpec, name: str) -> Writer:
    """Tier ``name`` of ``pool`` as a writer: its endpoint, or its nano model loaded now."""
    spec = pool.tier(name)
    if spec.kind == "nano":
        from occ_gym.tiers.nano_tier import load_nano_writer

        models_dir = Path(spec.models_dir) if spec.models_dir else MODELS_DIR
        return load_nano_writer(models_dir, spec.temperature, spec.model, spec.name)
    from occ_gym.tiers.endpoint import EndpointWriter  # the openai client: only when it writes

    return EndpointWriter(spec, pool)


def checked_writer(pool: PoolSpec, recording: Recording, name: str) -> Writer:
    """``writer_for``, refusing a nano model whose weights are not the ones that recorded."""
    writer = writer_for(pool, name)
    recorded = recording.models_sha256.get(name)
    model = getattr(writer, "model", None)
    if recorded is not None and model is not None and model.weights_sha256() != recorded:
        raise TraceError(
            f"tier {name}: the weights of model {pool.tier(name).model} are not the ones that "
            f"recorded {recording.table.source}; live attempts would not match its rows"
        )
    return writer


class PoolTier(TableTier):
    """One tier of a recorded pool: its rows, its expected costs, and live writing on a miss."""

    def __init__(
        self,
        name: str,
        recording: Recording,
        problems: dict[str, PackProblem],
        live: LiveBackend | None,
    ):
        traces = recording.table
        super().__init__(name, traces, len(problems), recording.samples, live)
        self.recording = recording
        self._problems = problems
        spec = recording.spec(name)
        self.max_new_tokens = (
            int(spec["max_tokens"]) if spec["kind"] == "openai" else MAX_NEW_TOKENS
        )
        self._round_costs = recording.expected_costs[name]
        self.nominal_cost = self._round_costs[0]

    def problem(self, task_id: str) -> CodeProblem:
        return self._problems[task_id]

    def asset_files(self) -> list[Path]:
        return [*super().asset_files(), self.recording.folder / TASKS_FILE]

    def attempt_cost(self, task: Task, repair_round: int) -> float:
        """The mean recorded cost of this tier's attempts at ``repair_round`` (the deepest
        recorded round's beyond it)."""
        return self._round_costs[min(repair_round, len(self._round_costs) - 1)]


def make_pool_tiers(
    recording: Recording,
    mode: str = "replay",
    pool: str | Path | None = None,
    problems: Sequence[PackProblem] | None = None,
) -> list[PoolTier]:
    """The recording's tiers, cheapest first (by mean recorded cost of a fresh attempt), on
    ``problems`` (the recorded ones by default). Replay refuses a table with gaps on them; live
    mode reads ``pool`` (the recording's ``pool.toml`` by default), which must be the pool that
    recorded it, and checks its key variables now."""
    if mode not in ("replay", "live"):
        raise ValueError(f"mode must be 'replay' or 'live', got {mode!r}")
    if mode == "replay" and pool is not None:
        raise ValueError("pool= is live mode's: replay reads only the recorded table")
    played = list(recording.problems if problems is None else problems)
    live = None
    if mode == "live":
        spec = read_pool(pool if pool is not None else recording.pool_file)
        check_same_pool(spec, recording)
        spec.check_keys()
        live = LiveBackend(partial(checked_writer, spec, recording))
        for tier in spec.tiers:
            if tier.kind == "nano":
                live.writer(tier.name)  # a model that fails to load or differs fails here
    else:
        check_complete(recording, played)
    by_id = problems_by_id(played)
    tiers = [PoolTier(name, recording, by_id, live) for name in recording.tiers]
    return sorted(tiers, key=lambda tier: tier.nominal_cost)


def check_same_pool(spec: PoolSpec, recording: Recording) -> None:
    """Refuse a live pool whose tiers would write what the recording's did not."""
    if spec.identity() == recording.pool:
        return
    recorded = {t["name"]: t for t in recording.pool["tiers"]}
    differs = [
        f"{tier['name']}: {name} {recorded[tier['name']].get(name)!r} -> {value!r}"
        for tier in spec.identity()["tiers"]
        if tier["name"] in recorded
        for name, value in tier.items()
        if recorded[tier["name"]].get(name) != value
    ]
    names = sorted({t["name"] for t in spec.identity()["tiers"]} ^ set(recorded))
    if differs:
        reason = "; ".join(differs[:3])
    elif names:
        reason = f"tiers {names} are in one pool only"
    elif spec.cost != recording.pool.get("cost"):
        reason = f"cost {recording.pool.get('cost')!r} -> {spec.cost!r}"
    else:
        reason = "the tiers are in another order"
    raise TraceError(
        f"{spec.source} is not the pool that recorded {recording.table.source} ({reason}); "
        "live attempts must come from the same models and settings"
    )


def check_complete(recording: Recording, problems: Sequence[PackProblem]) -> None:
    """Every task played has every row an episode can ask for, in every tier."""
    table = recording.table
    absent_tiers = [name for name in recording.tiers if name not in table.tiers()]
    absent_tasks = sorted({p.task_id for p in problems} - set(table.task_ids()))
    if absent_tiers or absent_tasks:
        raise TraceError(
            f"{table.source}: no rows for tiers {absent_tiers} or tasks {absent_tasks[:3]}; "
            "finish the recording (run occ-gym record again) or use mode='live'"
        )
    gaps = coverage_gaps(table, list(recording.tiers), recording.samples, recording.repair_rounds)
    if gaps:
        raise TraceError(
            f"{table.source}: rows are missing, for example {', '.join(gaps)}; re-record "
            "the table (occ-gym record) or use mode='live'"
        )


__all__ = ["PoolTier", "make_pool_tiers", "writer_for"]
