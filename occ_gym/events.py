"""The structured event log: what happened in each episode, as JSON lines.

``EventLogger`` wraps an env and appends, per episode, the events of the benchmark event
protocol to a JSONL file:

- ``run_start``: env id, config (the env's keyword arguments), ``cfg_hash``, ``env_hash``,
  seed, policy id;
- ``step``: action, tier, tokens in and out, context size, cost, wall time of the step;
- ``tool_call``: each VERIFY: the verifier's latency, exit kind, tests passed and failed;
- ``failure``: each failed VERIFY: its root category (syntax/build, import, semantic, timeout,
  resource, safety) and the evidence (the verifier's feedback);
- ``recovery``: each REPAIR of a failed candidate, with the step of the failure its chain of
  repairs answers, its number in that chain, and its outcome: the verdict of the VERIFY that
  follows it, or ``unverified`` when the episode moves on (a fresh ATTEMPT, SUBMIT, the end);
- ``context_decision``: each REPAIR: how many of the candidate's earlier failed attempts its
  context held and how many it left out to fit the model's window (null where the trace does
  not record it), the context's tokens, and the rule that chose;
- ``run_stop``: success (hidden tests), outcome and early-stop reason, total tokens, compute,
  wall time, hidden tests passed and failed, steps, return.

Training runs write ``optimizer_update`` events (``training_event``) to their run folder's
``events.jsonl``: each held-out evaluation's config, metrics and checkpoint.

Every event carries ``event``, ``version``, ``run_id`` (one per episode, or per training
run), ``task_id``, ``step_id`` and ``ts``; ``schemas/events.schema.json`` is the schema
(``validate_event``).
An episode's events are written in one append and flushed to disk when it ends, so a killed
run loses at most the episode in flight; ``read_events`` skips a torn last line with a warning.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from jsonschema import Draft202012Validator

from occ_gym.attempt import ErrorKind
from occ_gym.envs.code_env import occ_env
from occ_gym.hashing import canonical_json, env_hash, stable_hash
from occ_gym.resources import package_file
from occ_gym.verifier.verdict import FailureRoot

EVENT_VERSION = 3
CONTEXT_RULE = "drop the oldest failed attempts first; the prompt and the latest failure stay"
"""How a repair context is cut to the window (``tiers.nano_card.fit_repair_context``)."""
SCHEMA_PATH = package_file("schemas", "events.schema.json")
ROOT_OF_ERROR = {
    ErrorKind.SYNTAX: FailureRoot.SYNTAX,
    ErrorKind.IMPORT: FailureRoot.IMPORT,
    ErrorKind.RUNTIME: FailureRoot.SEMANTIC,
    ErrorKind.WRONG_ANSWER: FailureRoot.SEMANTIC,
    ErrorKind.TIMEOUT: FailureRoot.TIMEOUT,
    ErrorKind.RESOURCE: FailureRoot.RESOURCE,
    ErrorKind.SAFETY: FailureRoot.SAFETY,
}
EVIDENCE_CHARS = 500


class EventLogError(ValueError):
    """An event file that cannot be read, or an event that breaks the schema."""


class EventLogger(gym.Wrapper):
    """Writes each episode's events to ``path`` (JSONL, appended; see the module docstring).

    ``policy_id`` names who acts (for example a baseline's name or a checkpoint path).
    """

    def __init__(self, env: gym.Env, path: str | Path, policy_id: str = "unknown"):
        super().__init__(env)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.policy_id = policy_id
        inner = occ_env(env)
        spec = inner.spec
        self.config = json.loads(canonical_json(dict(spec.kwargs) if spec else {}))
        self.env_id = spec.id if spec else None
        self.cfg_hash = stable_hash({"env_id": self.env_id, "config": self.config})
        self.env_hash = env_hash(env)
        self._events: list[dict[str, Any]] = []
        self._run_id: str | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if self._run_id is not None:
            self._abandon()
        obs, info = self.env.reset(seed=seed, options=options)
        self._run_id = uuid.uuid4().hex
        self._task_id = str(info.get("task_id", "unknown"))
        self._step_id, self._return, self._wall_ms = 0, 0.0, 0.0
        self._failure_step: int | None = None
        """The step of the failure the current candidate's repairs answer (None: no failure)."""
        self._repairs = 0
        self._pending: dict[str, Any] | None = None
        """A REPAIR whose outcome is not known yet (no VERIFY since)."""
        self._add(
            "run_start",
            env_id=self.env_id,
            config=self.config,
            cfg_hash=self.cfg_hash,
            env_hash=self.env_hash,
            seed=seed,
            policy_id=self.policy_id,
        )
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._run_id is None:
            raise RuntimeError("call reset() before step()")
        started = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(action)
        wall_ms = 1000 * (time.perf_counter() - started)
        self._step_id += 1
        self._return += float(reward)
        self._wall_ms += wall_ms
        tokens_in, tokens_out = info.get("tokens_in", 0), info.get("tokens_out", 0)
        step = {
            "action": info["action"],
            "tier": info["tier"],
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "context_tokens": tokens_in,
            "cost": float(info["cost"]),
            "wall_ms": wall_ms,
        }
        if "illegal_action" in info:
            step["illegal_action"] = info["illegal_action"]
        self._add("step", **step)
        action_name = info["action"]  # an illegal action's is IDLE: it changes nothing
        if action_name not in ("VERIFY", "IDLE"):
            self._recovered("unverified", None)
        if action_name == "REPAIR":
            self._context_decision(info)
        if action_name == "REPAIR" and self._failure_step:
            self._repairs += 1
            self._pending = {"attempt": self._repairs, "tier": info["tier"]}
        elif action_name.startswith("ATTEMPT"):
            self._failure_step, self._repairs = None, 0
        if "public_passed" in info:
            self._verification(info)
        if terminated or truncated:
            self._recovered("unverified", None)
            self._stop(info)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        if self._run_id is not None and self._events:
            self._abandon()
        super().close()

    def _abandon(self) -> None:
        self._recovered("unverified", None)
        self._stop({"outcome": "abandoned"})

    def _verification(self, info: dict[str, Any]) -> None:
        passed, total = info["public_passed"], info["public_total"]
        self._add(
            "tool_call",
            tool="verifier",
            tier=info["tier"],
            latency_ms=float(info.get("verify_ms", 0.0)),
            exit_kind=info["error_kind"],
            tests_passed=passed,
            tests_failed=total - passed,
        )
        error = ErrorKind[info["error_kind"].upper()]
        if self._pending is not None:
            self._recovered("passed" if error is ErrorKind.NONE else "failed", info["error_kind"])
        if error is not ErrorKind.NONE and self._failure_step is None:
            self._failure_step = self._step_id
        if error is not ErrorKind.NONE:
            self._add(
                "failure",
                root=ROOT_OF_ERROR[error].value,
                error_kind=info["error_kind"],
                tier=info["tier"],
                evidence=info.get("feedback", f"{passed}/{total} public tests passed")[
                    :EVIDENCE_CHARS
                ],
            )

    def _context_decision(self, info: dict[str, Any]) -> None:
        before, dropped = int(info["repair_round"]), int(info["context_dropped"])
        known = dropped >= 0
        self._add(
            "context_decision",
            tier=info["tier"],
            failures_before=before,
            kept=before - dropped if known else None,
            dropped=dropped if known else None,
            context_tokens=int(info.get("tokens_in", 0)),
            rule=CONTEXT_RULE,
        )

    def _recovered(self, outcome: str, error_kind: str | None) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._add(
                "recovery",
                failure_step=self._failure_step,
                outcome=outcome,
                error_kind=error_kind,
                **pending,
            )

    def _stop(self, info: dict[str, Any]) -> None:
        outcome = info["outcome"]
        hidden_passed = info.get("hidden_passed", 0)
        self._add(
            "run_stop",
            success=bool(info.get("hidden_pass", False)),
            outcome=outcome,
            early_stop_reason=None if outcome == "submitted" else outcome,
            total_tokens=int(info.get("tokens", 0)),
            compute=float(info.get("compute", 0.0)),
            wall_ms=self._wall_ms,
            tests_passed=int(hidden_passed),
            tests_failed=int(info.get("hidden_total", 0)) - int(hidden_passed),
            steps=self._step_id,
            **{"return": self._return},
        )
        lines = "".join(json.dumps(event) + "\n" for event in self._events)
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(lines)
            stream.flush()
            os.fsync(stream.fileno())
        self._events.clear()
        self._run_id = None

    def _add(self, kind: str, **fields: Any) -> None:
        self._events.append(
            {
                "event": kind,
                "version": EVENT_VERSION,
                "run_id": self._run_id,
                "task_id": self._task_id,
                "step_id": self._step_id,
                "ts": time.time(),
                **fields,
            }
        )


def training_event(
    path: str | Path, run_id: str, task_id: str, step_id: int, **fields: Any
) -> dict[str, Any]:
    """Append one ``optimizer_update`` event (``fields``: its schema's) to ``path``, checked
    against the schema first, and return it."""
    event = {
        "event": "optimizer_update",
        "version": EVENT_VERSION,
        "run_id": run_id,
        "task_id": task_id,
        "step_id": step_id,
        "ts": time.time(),
        **json.loads(canonical_json(fields)),
    }
    validate_event(event, str(path))
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(event) + "\n")
    return event


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def validate_event(event: dict[str, Any], where: str = "event") -> None:
    """``EventLogError`` naming ``where`` and the first schema violation, if any."""
    error = next(iter(_validator().iter_errors(event)), None)
    if error is not None:
        path = "/".join(map(str, error.absolute_path)) or "(top level)"
        raise EventLogError(f"{where}: {path}: {error.message}")


def read_events(path: str | Path, validate: bool = True) -> Iterator[dict[str, Any]]:
    """The events of a JSONL file, each checked against the schema. A torn last line (a run
    killed mid-write) is skipped with a warning; a bad line before it raises."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise EventLogError(f"cannot read event file {path}: {error}") from error
    torn = lines.pop()  # the text after the last newline: "" unless the last write was torn
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except json.JSONDecodeError as error:
            raise EventLogError(f"{path}:{number}: not a JSON event: {error}") from error
        if validate:
            validate_event(event, f"{path}:{number}")
        yield event
    if torn:
        warnings.warn(
            f"{path}: skipped a torn last line ({len(torn)} characters without a newline)",
            stacklevel=2,
        )


def summarize(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Failure taxonomy counts, per-tier latency and tokens, and episode outcomes."""
    failures: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    per_tier: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    runs = successes = 0
    for event in events:
        kind = event["event"]
        if kind == "failure":
            failures[event["root"]] += 1
        elif kind == "step" and event["tier"] is not None and event["action"] != "VERIFY":
            tier = per_tier[event["tier"]]
            tier["tokens_in"].append(event["tokens_in"])
            tier["tokens_out"].append(event["tokens_out"])
            tier["step_ms"].append(event["wall_ms"])
        elif kind == "tool_call" and event["tier"] is not None:
            per_tier[event["tier"]]["verify_ms"].append(event["latency_ms"])
        elif kind == "run_stop":
            runs += 1
            successes += event["success"]
            outcomes[event["outcome"]] += 1
    return {
        "episodes": runs,
        "success_rate": successes / runs if runs else None,
        "outcomes": dict(outcomes),
        "failures": dict(failures.most_common()),
        "tiers": {
            tier: {
                "calls": len(values["tokens_in"]),
                **{f"mean_{k}": float(np.mean(v)) for k, v in sorted(values.items()) if v},
            }
            for tier, values in sorted(per_tier.items())
        },
    }
