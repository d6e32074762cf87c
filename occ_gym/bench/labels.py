"""The bench's fixed row labels, which the runner, the findings and the report all name."""

REFERENCE = "FixedTier(expensive)"
"""The strong model: always the big tier. Cost cuts are measured at its hidden pass."""
ORACLE = "HindsightOracle (upper bound)"
SHIPPED = "MaskablePPO (shipped)"
TUNED_CASCADE = "TunedCascade"
"""The best threshold cascade of the grid, tuned on the train split."""
PLANNER = "ObservablePlanner"
"""The observable-optimal planner fitted on the train split: a reference, not a rule."""
ROUTER = "Router"
"""The RouteLLM/FrugalGPT-style learned router with the answer-side signals (v1)."""
ROUTER_PROMPT_ONLY = "Router(prompt only)"
"""The same router whose accept model sees no answer-side signal."""
AUTOMIX = "AutoMix"
"""The best cascade that never verifies: it escalates on the tier's own confidence."""
BEST_ROUTE = "BestRoute"
"""Best-of-n routed by the prompt (BEST-Route): a tier and a sample count per prompt bucket."""
ALGORITHM_NAMES = {"maskable_ppo": "MaskablePPO", "ppo": "PPO", "grpo": "GRPO"}


def seed_set_label(algo: str, seeds: int) -> str:
    """The row of a learner shipped as several training seeds: ``MaskablePPO (5 seeds)``."""
    return f"{ALGORITHM_NAMES.get(algo, algo)} ({seeds} seeds)"
