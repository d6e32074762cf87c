"""Tiers over a trace table: recorded attempts first, and in live mode the missing ones written
(by the tier's writer) and verified on demand, then kept for the rest of the run.

``TableTier`` holds the rule for both the nano suites (``nano_tier.NanoTier``) and any recorded
pool (``pool_tier.PoolTier``); they differ in where a task's problem comes from, who writes a
missing attempt and what an attempt is expected to cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from occ_gym.attempt import Attempt
from occ_gym.tasks.base import CodeProblem, Task
from occ_gym.tiers.nano_card import MAX_NEW_TOKENS
from occ_gym.tiers.writing import AttemptRequest, Writer, run_attempts
from occ_gym.traces.table import TraceRow, TraceTable
from occ_gym.verifier import Verifier


class LiveBackend:
    """What live mode shares across the tiers of an env: their writers and one verifier, each
    made on first use. ``make_writer(name)`` builds tier ``name``'s writer (it must pickle)."""

    def __init__(self, make_writer: Callable[[str], Writer]):
        self.make_writer = make_writer
        self._writers: dict[str, Writer] = {}
        self._verifier: Verifier | None = None

    def writer(self, name: str) -> Writer:
        if name not in self._writers:
            self._writers[name] = self.make_writer(name)
        return self._writers[name]

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
        """Pickles without its sandbox processes and loaded writers (made again on demand)."""
        return {"make_writer": self.make_writer, "_writers": {}, "_verifier": None}


class TableTier:
    """A tier that replays ``traces`` and, with a ``live`` backend, writes what it lacks.

    In replay mode the tier serves what its table holds: ``samples_per_task`` fresh samples
    per task and repairs up to ``recorded_repair_rounds``, which the env's mask respects. In
    live mode a key the table lacks is written and verified through ``run_attempts``, as
    ``occ-gym record`` writes it, so it equals the row a recording would hold.
    """

    max_new_tokens: int = MAX_NEW_TOKENS
    """The most tokens one attempt writes (``candidate_length`` in the observation divides by
    the largest of an env's tiers)."""

    def __init__(
        self,
        name: str,
        traces: TraceTable,
        task_count: int,
        samples_per_task: int,
        live: LiveBackend | None,
    ):
        self.name = name
        self.traces = traces
        self.task_count = task_count
        self.samples_per_task = samples_per_task
        self.recorded_repair_rounds = None if live else traces.repair_rounds()
        self.live = live
        self._attempts: dict[tuple[str, int, int], Attempt] = {}
        self._written: dict[tuple[str, str, int, int], TraceRow] = {}

    def problem(self, task_id: str) -> CodeProblem:
        """The problem a live attempt of ``task_id`` is written for."""
        raise NotImplementedError

    def asset_files(self) -> list[Path]:
        """The files this tier's behaviour depends on (``env_hash`` digests them)."""
        return [Path(self.traces.source)] if Path(self.traces.source).is_file() else []

    def row(self, task_id: str, sample: int, repair_round: int) -> TraceRow:
        key = (task_id, self.name, sample, repair_round)
        found = self.traces.row(key) or self._written.get(key)
        if found is not None:
            return found
        (written,) = self._write([(task_id, sample, repair_round)])
        return written

    def rows(self, keys: Sequence[tuple[str, int, int]]) -> list[TraceRow]:
        """``row`` of each (task id, sample, repair round), writing every one the table lacks
        in one batch (the vector env's live mode: one batch for all its sub-envs)."""
        missing = [
            key
            for key in dict.fromkeys(keys)
            if (key[0], self.name, *key[1:]) not in self.traces
            and (key[0], self.name, *key[1:]) not in self._written
        ]
        if missing:
            self._write(missing)
        return [self.row(*key) for key in keys]

    def _write(self, keys: Sequence[tuple[str, int, int]]) -> list[TraceRow]:
        """Write and verify the attempts at ``keys`` (each repair's parent exists already)."""
        if self.live is None:
            raise KeyError(
                f"attempt {(keys[0][0], self.name, *keys[0][1:])} is not in the trace table "
                f"{self.traces.source}; record it (occ-gym record) or use mode='live'"
            )
        requests = [
            AttemptRequest(
                self.problem(task_id),
                sample,
                tuple(self.row(task_id, sample, r) for r in range(repair_round)),
            )
            for task_id, sample, repair_round in keys
        ]
        written = run_attempts(self.live.writer(self.name), requests, self.live.verifier)
        for (task_id, sample, repair_round), row in zip(keys, written, strict=True):
            self._written[(task_id, self.name, sample, repair_round)] = row
        return written

    def attempt(
        self,
        task: Task,
        sample: int,
        repair_round: int,
        draws: Sequence[float],
        parent: Attempt | None,
    ) -> Attempt:
        key = (task.task_id, sample, repair_round)
        attempt = self._attempts.get(key)
        if attempt is None:
            recorded = self.traces.attempt((task.task_id, self.name, sample, repair_round))
            attempt = recorded if recorded is not None else self.row(*key).attempt()
            self._attempts[key] = attempt
        return attempt

    def outcome_table(self, task_ids: list[str], rounds: int) -> dict[str, np.ndarray]:
        """Every recorded attempt of the given tasks as arrays ``(task, sample, round)``: the
        fields of ``Attempt`` the vector env reads (``OUTCOME_FIELDS``, ``ANSWER_FIELDS``); nan
        where the table has no row (the repair of a candidate that passed its public tests,
        which no episode can ask for)."""
        return self.traces.attempt_arrays(self.name, task_ids, self.samples_per_task, rounds)

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
