"""The action and observation layouts: the one place that says which index means what."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from occ_gym.attempt import ErrorKind


class ActionLayout:
    """``Discrete(K + 4)``: ATTEMPT(0..K-1) with tiers cheapest first, then the four controls."""

    __slots__ = (
        "abstain",
        "names",
        "num_tiers",
        "repair",
        "size",
        "submit",
        "tier_names",
        "verify",
    )

    def __init__(self, tier_names: Sequence[str]):
        self.tier_names = tuple(tier_names)
        self.num_tiers = len(self.tier_names)
        self.verify = self.num_tiers
        self.repair = self.num_tiers + 1
        self.submit = self.num_tiers + 2
        self.abstain = self.num_tiers + 3
        self.size = self.num_tiers + 4
        self.names = (
            *(f"ATTEMPT({name})" for name in self.tier_names),
            "VERIFY",
            "REPAIR",
            "SUBMIT",
            "ABSTAIN",
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActionLayout) and other.tier_names == self.tier_names

    def __hash__(self) -> int:
        return hash(self.tier_names)

    def __getstate__(self) -> tuple[str, ...]:
        return self.tier_names

    def __setstate__(self, tier_names: tuple[str, ...]) -> None:
        ActionLayout.__init__(self, tier_names)

    def attempt(self, tier: int | str) -> int:
        """The ATTEMPT action of a tier, given its index or its name."""
        return self.tier_index(tier)

    def tier_index(self, tier: int | str) -> int:
        if isinstance(tier, str):
            if tier not in self.tier_names:
                raise ValueError(
                    f"unknown tier {tier!r}; this env has tiers {list(self.tier_names)}"
                )
            return self.tier_names.index(tier)
        if (
            isinstance(tier, (int, np.integer))
            and not isinstance(tier, bool)
            and 0 <= tier < self.num_tiers
        ):
            return int(tier)
        raise ValueError(
            f"unknown tier {tier!r}; expected a name in {list(self.tier_names)} "
            f"or an index in [0, {self.num_tiers})"
        )

    def name(self, action: int) -> str:
        """Readable name of an action: ``ATTEMPT(cheap)``, ``VERIFY``, ..."""
        if not 0 <= action < self.size:
            raise ValueError(f"action {action!r} is outside Discrete({self.size})")
        return self.names[action]


ANSWER_SIGNAL_FIELDS = (
    ("candidate_confidence", 1, "exp(mean token log-prob) of the current candidate, its tier's"),
    ("candidate_min_confidence", 1, "probability of the current candidate's least likely token"),
    ("candidate_length", 1, "tokens the tier wrote for the current candidate / 96"),
    ("candidate_agrees", 1, "1 if, verified, it returned what an earlier verified one did"),
)
"""What the tier says about its own answer (OCC-Code-v1 on): seen as the candidate is written,
agreement once it ran on the public inputs (VERIFY). 0 where the tier reports nothing."""
VERDICTS = ("unverified", "passed", "failed")
"""The current candidate's verification state, in the order of the ``candidate_verdict`` one-hot."""


@dataclass(frozen=True)
class ObservationField:
    name: str
    start: int
    size: int
    meaning: str

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)


@dataclass(frozen=True)
class DecodedBatch:
    """A batch of observations decoded (``ObservationLayout.decode``), one row per env."""

    has_candidate: np.ndarray
    verdict: np.ndarray
    """Index into ``VERDICTS`` (0, unverified, also where there is no candidate)."""
    attempts: np.ndarray
    """(n, tiers): fresh attempts made with each tier."""
    repair_round: np.ndarray
    steps_left: np.ndarray
    best_passed: np.ndarray
    """Whether some verified candidate passed every public test."""


class ObservationLayout:
    """A flat float32 vector in [0, 1]; fields in this order (F prompt features, K tiers)."""

    def __init__(
        self,
        feature_names: Sequence[str],
        tier_names: Sequence[str],
        max_steps: int,
        answer_signals: bool = False,
    ):
        self.feature_names = tuple(feature_names)
        self.tier_names = tuple(tier_names)
        self.max_steps = max_steps
        self.max_repair_rounds = max_repair_rounds(max_steps)
        self.answer_signals = answer_signals
        specs = [
            (
                "prompt_features",
                len(self.feature_names),
                "features of the prompt text (task source's)",
            ),
            (
                "tier_attempts",
                len(self.tier_names),
                "fresh attempts made with each tier / max_steps",
            ),
            ("has_candidate", 1, "1 if a candidate exists"),
            (
                "candidate_tier",
                len(self.tier_names),
                "one-hot: tier that wrote the current candidate",
            ),
            (
                "candidate_verdict",
                len(VERDICTS),
                "one-hot: current candidate unverified/passed/failed",
            ),
            ("error_kind", len(ErrorKind), "one-hot ErrorKind of the current candidate's VERIFY"),
            ("public_pass_fraction", 1, "public tests the current candidate passed (if verified)"),
            ("best_public_fraction", 1, "best public-test fraction of any verified candidate"),
            *(ANSWER_SIGNAL_FIELDS if answer_signals else ()),
            ("context_length", 1, "repair round of the current candidate / max repair rounds"),
            ("cost_so_far", 1, "compute spent / the most an episode can spend"),
            ("budget_left", 1, "budget left / budget (1 when there is no budget)"),
            ("steps_left", 1, "steps left / max_steps"),
        ]
        self.fields: dict[str, ObservationField] = {}
        start = 0
        for name, size, meaning in specs:
            self.fields[name] = ObservationField(name, start, size, meaning)
            start += size
        self.size = start

    def __getitem__(self, name: str) -> slice:
        return self.fields[name].slice

    def index(self, name: str) -> int:
        """Index of a one-wide field."""
        field = self.fields[name]
        if field.size != 1:
            raise ValueError(
                f"observation field {name!r} is {field.size} wide; use layout[{name!r}]"
            )
        return field.start

    def attempts_made(self, observation: np.ndarray) -> np.ndarray:
        """Fresh attempts per tier, as integers, decoded from an observation."""
        return np.rint(observation[self["tier_attempts"]] * self.max_steps).astype(np.int64)

    def repair_round(self, observation: np.ndarray) -> int:
        fraction = float(observation[self.index("context_length")])
        return round(fraction * max(1, self.max_repair_rounds))

    def verdict(self, observation: np.ndarray) -> str | None:
        """'unverified', 'passed', 'failed', or None without a candidate."""
        if observation[self.index("has_candidate")] < 0.5:
            return None
        return VERDICTS[int(np.argmax(observation[self["candidate_verdict"]]))]

    def steps_used(self, observation: np.ndarray) -> int:
        return self.max_steps - round(float(observation[self.index("steps_left")]) * self.max_steps)

    def decode(self, obs: np.ndarray) -> DecodedBatch:
        """What the rules of a batch ``(n, size)`` of observations read, as integer arrays."""
        at = self.fields
        rounds = obs[:, at["context_length"].start] * max(1, self.max_repair_rounds)
        return DecodedBatch(
            has_candidate=obs[:, at["has_candidate"].start] > 0.5,
            verdict=np.argmax(obs[:, self["candidate_verdict"]], axis=1),
            attempts=np.rint(obs[:, self["tier_attempts"]] * self.max_steps).astype(int),
            repair_round=np.rint(rounds).astype(int),
            steps_left=np.rint(obs[:, at["steps_left"].start] * self.max_steps).astype(int),
            best_passed=obs[:, at["best_public_fraction"].start] >= 1.0 - 1e-6,
        )

    def rows(self) -> list[tuple[str, str, str]]:
        """(indices, field, meaning) rows for documentation tables."""
        rows = []
        for field in self.fields.values():
            end = field.start + field.size - 1
            span = str(field.start) if field.size == 1 else f"{field.start}-{end}"
            rows.append((span, field.name, field.meaning))
        return rows


MAX_STEPS = 64
"""The longest episode ``max_steps`` allows."""


def max_repair_rounds(max_steps: int) -> int:
    """The deepest repair reachable: ATTEMPT, then (VERIFY, REPAIR) r times, within max_steps."""
    return max(0, (max_steps - 1) // 2)


class MaskedDiscrete(spaces.Discrete):
    """``Discrete(K + 4)`` whose ``sample()`` never picks an action the env would reject.

    - ``sample(mask=env.unwrapped.action_masks())`` draws uniformly among the legal actions (the
      mask may be bool, as ``action_masks()`` returns, or int8 as Gymnasium expects);
    - ``sample()`` with no mask draws among the actions that are legal now *and* after any
      reset: the ATTEMPT actions the broker allows now, and ABSTAIN. Tools that sample before
      a reset and step after it (Gymnasium's ``check_env`` does) stay legal; a plain random
      agent attempts and abstains but never verifies or submits.

    It reads the environment's live mask, which it shares.
    """

    def __init__(
        self, legal: np.ndarray, num_tiers: int, seed: int | np.random.Generator | None = None
    ):
        super().__init__(len(legal), seed=seed)
        self._legal = legal
        self._num_tiers = num_tiers
        self._always_legal = np.zeros(len(legal), dtype=np.int8)

    def sample(
        self, mask: np.ndarray | None = None, probability: np.ndarray | None = None
    ) -> np.int64:
        if mask is None and probability is None and self._legal.any():
            safe = self._always_legal
            safe[: self._num_tiers] = self._legal[: self._num_tiers]
            safe[-1] = 1  # ABSTAIN
            mask = safe
        elif mask is not None and mask.dtype == np.bool_:
            mask = mask.astype(np.int8)
        return super().sample(mask=mask, probability=probability)
