"""The bench's fixed row labels, which the runner, the findings and the report all name."""

REFERENCE = "FixedTier(expensive)"
"""The strong model: always the big tier. Cost cuts are measured at its hidden pass."""
ORACLE = "HindsightOracle (upper bound)"
SHIPPED = "MaskablePPO (shipped)"
