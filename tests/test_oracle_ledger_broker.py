"""ImpactOracle terms, CreditLedger decay math, ResourceBroker decisions."""

from __future__ import annotations

import math

import pytest

from occ_gym import BrokerVerdict, CreditLedger, ImpactOracle, ResourceBroker


def test_oracle_terms_with_default_weights():
    oracle = ImpactOracle()
    passed = oracle.score(submitted=True, hidden_passed=10, hidden_total=10, compute=350)
    assert passed.correctness == 1.0 and passed.pass_at_k == 0.0 and passed.regression == 0.0
    assert passed.total == pytest.approx(1.0 - 0.35)
    near_miss = oracle.score(submitted=True, hidden_passed=8, hidden_total=10, compute=100)
    assert near_miss.pass_at_k == pytest.approx(0.24) and near_miss.regression == -0.5
    assert near_miss.total == pytest.approx(0.24 - 0.5 - 0.1)
    abstained = oracle.score(submitted=False, hidden_passed=0, hidden_total=10, compute=60)
    assert abstained.total == pytest.approx(-0.06) and abstained.correctness == 0.0
    assert oracle.outcome_value(True, 9, 10) < oracle.outcome_value(False, 0, 10)  # guessing loses


@pytest.mark.parametrize("name", ["correctness", "pass_at_k", "regression", "compute_penalty"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_oracle_rejects_non_finite_weights(name, value):
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        ImpactOracle(**{name: value})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"regression": 0.5}, "penalty and must be <= 0"),
        ({"compute_penalty": -1}, ">= 0"),
        ({"correctness": "1"}, "must be a number"),
        ({"pass_at_k": True}, "must be a number"),
    ],
)
def test_oracle_rejects_bad_weights(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ImpactOracle(**kwargs)


def test_oracle_rejects_impossible_results():
    with pytest.raises(ValueError, match="impossible"):
        ImpactOracle().score(submitted=True, hidden_passed=11, hidden_total=10, compute=0)
    with pytest.raises(ValueError, match="compute"):
        ImpactOracle().score(submitted=True, hidden_passed=1, hidden_total=10, compute=math.nan)


def test_ledger_decay_halves_at_half_life():
    ledger = CreditLedger(decay=math.log(2))
    ledger.earn("a", "cheap", 8.0, reason="pass")
    ledger.advance(1.0)
    assert ledger.balance("a", "cheap") == pytest.approx(4.0)
    ledger.spend("a", "cheap", 1.0, reason="call")
    ledger.advance(2.0)
    assert ledger.earned("a", "cheap") == pytest.approx(1.0)
    assert ledger.spent("a", "cheap") == pytest.approx(0.25)
    assert ledger.balance("a", "cheap") == pytest.approx(0.75)
    assert ledger.total_spent("a") == pytest.approx(1.0)  # budgets never decay


def test_ledger_matches_sum_of_decayed_entries():
    decay = 0.3
    ledger = CreditLedger(decay=decay)
    for step in range(20):
        ledger.earn("a", "s", 1.0 + step % 3, reason="r", task_id=f"t{step}", action_id=step)
        if step % 2:
            ledger.spend("a", "s", 0.5, reason="r")
        ledger.advance(0.5)
    expected = sum(e.amount * math.exp(-decay * (ledger.now - e.time)) for e in ledger.entries)
    assert ledger.balance("a", "s") == pytest.approx(expected)
    assert ledger.entries[3].task_id == "t2" and ledger.entries[0].sequence == 0


def test_ledger_is_append_only_and_scoped():
    ledger = CreditLedger()
    ledger.earn("a", "x", 1.0, reason="r")
    ledger.spend("b", "x", 2.0, reason="r")
    entries = ledger.entries
    assert isinstance(entries, tuple) and [e.amount for e in entries] == [1.0, -2.0]
    with pytest.raises(AttributeError):
        entries[0].amount = 5.0
    assert ledger.balance("a", "x") == 1.0 and ledger.balance("b", "x") == -2.0
    assert ledger.balance("a", "y") == 0.0


@pytest.mark.parametrize("amount", [-1.0, float("nan"), float("inf"), True])
def test_ledger_rejects_bad_amounts(amount):
    with pytest.raises(ValueError, match="amounts"):
        CreditLedger().earn("a", "x", amount, reason="r")


def test_ledger_rejects_bad_decay_and_time_travel():
    with pytest.raises(ValueError, match="decay"):
        CreditLedger(decay=-0.1)
    with pytest.raises(ValueError, match="decay"):
        CreditLedger(decay=float("nan"))
    with pytest.raises(ValueError, match="forward"):
        CreditLedger().advance(-1.0)


def test_broker_budget_throttle_and_deny():
    ledger = CreditLedger()
    broker = ResourceBroker(ledger, budget=100.0, throttle_fraction=0.8)
    assert broker.request("a", "x", 50).verdict is BrokerVerdict.ALLOW
    ledger.spend("a", "x", 50, reason="r")
    throttled = broker.request("a", "y", 40)
    assert throttled.verdict is BrokerVerdict.THROTTLE and throttled.allowed
    denied = broker.request("a", "x", 60)
    assert denied.verdict is BrokerVerdict.DENY and "budget 100" in denied.reason
    assert broker.request("b", "x", 60).verdict is BrokerVerdict.ALLOW  # budgets are per agent
    assert broker.request("a", "x", 50).verdict is BrokerVerdict.THROTTLE  # exactly the budget


def test_broker_min_balance():
    ledger = CreditLedger()
    ledger.earn("a", "x", 10.0, reason="grant")
    broker = ResourceBroker(ledger, min_balance=0.0)
    assert broker.request("a", "x", 10).allowed
    decision = broker.request("a", "x", 11)
    assert decision.verdict is BrokerVerdict.DENY and "balance" in decision.reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget": 0},
        {"budget": float("nan")},
        {"throttle_fraction": 0},
        {"min_balance": float("inf")},
    ],
)
def test_broker_rejects_bad_config(kwargs):
    with pytest.raises(ValueError):
        ResourceBroker(CreditLedger(), **kwargs)


def test_broker_rejects_bad_cost():
    with pytest.raises(ValueError, match="cost"):
        ResourceBroker(CreditLedger()).request("a", "x", -1)
