"""CreditLedger: append-only record of credit earned and compute spent, with exponential decay."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One append-only record; ``amount`` > 0 earns credit, < 0 spends it."""

    sequence: int
    time: float
    agent: str
    scope: str
    amount: float
    reason: str
    task_id: str | None = None
    action_id: int | None = None


class _Account:
    """Running decayed sums of one (agent, scope), so a balance costs O(1)."""

    __slots__ = ("earned", "spent", "spent_undecayed", "time")

    def __init__(self, time: float):
        self.earned = 0.0
        self.spent = 0.0
        self.spent_undecayed = 0.0
        self.time = time


class CreditLedger:
    """Credit earned and spent per agent and capability scope.

    An entry of amount ``a`` made at time ``t0`` counts ``a * exp(-decay * (t - t0))`` at time
    ``t``: old successes and old spending fade with half-life ``ln 2 / decay``; ``decay = 0``
    keeps everything. Time is a logical clock the caller chooses (episodes, steps, seconds);
    it may only move forward. Entries are never changed or removed.
    """

    def __init__(self, decay: float = 0.0):
        if (
            isinstance(decay, bool)
            or not isinstance(decay, (int, float))
            or not math.isfinite(decay)
        ):
            raise ValueError(f"decay must be a finite number, got {decay!r}")
        if decay < 0:
            raise ValueError(f"decay must be >= 0, got {decay}")
        self.decay = float(decay)
        self.now = 0.0
        self._entries: list[LedgerEntry] = []
        self._accounts: dict[tuple[str, str], _Account] = {}

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        return tuple(self._entries)

    def advance(self, dt: float = 1.0) -> float:
        """Move the clock forward by ``dt`` and return the new time."""
        if not math.isfinite(dt) or dt < 0:
            raise ValueError(f"the ledger's clock only moves forward; got dt={dt!r}")
        self.now += dt
        return self.now

    def earn(
        self,
        agent: str,
        scope: str,
        amount: float,
        *,
        reason: str,
        task_id: str | None = None,
        action_id: int | None = None,
    ) -> LedgerEntry:
        """Record credit earned (``amount`` > 0)."""
        self._require_amount(amount)
        return self._append(agent, scope, float(amount), reason, task_id, action_id)

    def spend(
        self,
        agent: str,
        scope: str,
        amount: float,
        *,
        reason: str,
        task_id: str | None = None,
        action_id: int | None = None,
    ) -> LedgerEntry:
        """Record compute spent (``amount`` >= 0, stored as a negative entry)."""
        self._require_amount(amount)
        return self._append(agent, scope, -float(amount), reason, task_id, action_id)

    def balance(self, agent: str, scope: str) -> float:
        """Decayed credit earned minus decayed compute spent, now."""
        return self.earned(agent, scope) - self.spent(agent, scope)

    def earned(self, agent: str, scope: str) -> float:
        account = self._accounts.get((agent, scope))
        return 0.0 if account is None else account.earned * self._fade(account)

    def spent(self, agent: str, scope: str) -> float:
        account = self._accounts.get((agent, scope))
        return 0.0 if account is None else account.spent * self._fade(account)

    def total_spent(self, agent: str, scope: str | None = None) -> float:
        """Undecayed compute spent by ``agent`` in ``scope`` (all scopes if None): for budgets."""
        return sum(
            account.spent_undecayed
            for (owner, account_scope), account in self._accounts.items()
            if owner == agent and (scope is None or account_scope == scope)
        )

    def _fade(self, account: _Account) -> float:
        return math.exp(-self.decay * (self.now - account.time)) if self.decay else 1.0

    @staticmethod
    def _require_amount(amount: float) -> None:
        if (
            isinstance(amount, bool)
            or not isinstance(amount, (int, float))
            or not math.isfinite(amount)
        ):
            raise ValueError(f"ledger amounts must be finite numbers, got {amount!r}")
        if amount < 0:
            raise ValueError(
                f"ledger amounts must be >= 0 (earn or spend says the sign), got {amount}"
            )

    def _append(
        self,
        agent: str,
        scope: str,
        amount: float,
        reason: str,
        task_id: str | None,
        action_id: int | None,
    ) -> LedgerEntry:
        account = self._accounts.get((agent, scope))
        if account is None:
            account = self._accounts[(agent, scope)] = _Account(self.now)
        fade = self._fade(account)
        account.earned = account.earned * fade + max(amount, 0.0)
        account.spent = account.spent * fade + max(-amount, 0.0)
        account.spent_undecayed += max(-amount, 0.0)
        account.time = self.now
        entry = LedgerEntry(
            len(self._entries), self.now, agent, scope, amount, reason, task_id, action_id
        )
        self._entries.append(entry)
        return entry
