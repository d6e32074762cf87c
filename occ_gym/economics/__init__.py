"""What an episode is worth and what it may spend: the impact oracle (reward), the credit
ledger (who spent what) and the resource broker (budgets that mask actions)."""
