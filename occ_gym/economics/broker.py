"""ResourceBroker: ALLOW, THROTTLE or DENY a compute request from the ledger and a budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from occ_gym.economics.ledger import CreditLedger


class BrokerVerdict(Enum):
    ALLOW = "allow"
    THROTTLE = "throttle"
    """Allowed, but close to a limit: callers may slow down or prefer cheaper options."""
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class BrokerDecision:
    verdict: BrokerVerdict
    reason: str

    @property
    def allowed(self) -> bool:
        return self.verdict is not BrokerVerdict.DENY


class ResourceBroker:
    """Decides compute requests.

    - DENY if ``budget`` is set and the agent's undecayed spend plus the request exceeds it;
    - DENY if ``min_balance`` is set and the scope's balance after the request would fall below it;
    - THROTTLE if the request takes the spend past ``throttle_fraction`` of the budget;
    - ALLOW otherwise.
    """

    def __init__(
        self,
        ledger: CreditLedger,
        *,
        budget: float | None = None,
        min_balance: float | None = None,
        throttle_fraction: float = 0.8,
    ):
        if budget is not None and (not math.isfinite(budget) or budget <= 0):
            raise ValueError(f"budget must be a finite number > 0 or None, got {budget!r}")
        if min_balance is not None and not math.isfinite(min_balance):
            raise ValueError(f"min_balance must be finite or None, got {min_balance!r}")
        if not 0.0 < throttle_fraction <= 1.0:
            raise ValueError(f"throttle_fraction must be in (0, 1], got {throttle_fraction!r}")
        self.ledger = ledger
        self.budget = budget
        self.min_balance = min_balance
        self.throttle_fraction = throttle_fraction

    def request(self, agent: str, scope: str, cost: float) -> BrokerDecision:
        if not math.isfinite(cost) or cost < 0:
            raise ValueError(f"a request's cost must be finite and >= 0, got {cost!r}")
        spent = self.ledger.total_spent(agent) if self.budget is not None else 0.0
        if self.budget is not None and spent + cost > self.budget * (1 + 1e-12):
            return BrokerDecision(
                BrokerVerdict.DENY,
                f"{cost:g} more would spend {spent + cost:g} of budget {self.budget:g}",
            )
        if self.min_balance is not None:
            balance = self.ledger.balance(agent, scope)
            if balance - cost < self.min_balance:
                return BrokerDecision(
                    BrokerVerdict.DENY,
                    f"balance of {scope!r} would fall to {balance - cost:g} < {self.min_balance:g}",
                )
        if self.budget is not None and spent + cost > self.throttle_fraction * self.budget:
            return BrokerDecision(
                BrokerVerdict.THROTTLE, f"past {self.throttle_fraction:.0%} of budget"
            )
        return BrokerDecision(BrokerVerdict.ALLOW, "")
