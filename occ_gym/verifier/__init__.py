"""The verifier: a bubblewrap + seccomp sandbox whose verdicts hostile code cannot forge.

>>> from occ_gym.verifier import Candidate, TestCase, Verifier
>>> with Verifier() as verifier:
...     verdict = verifier.verify(
...         Candidate("def double(x):\\n    return 2 * x\\n", "double", (TestCase((2,), 4),))
...     )
>>> verdict.passed
True
"""

from occ_gym.verifier.protocol import ALLOWED_MODULES
from occ_gym.verifier.sandbox import (
    SandboxConfig,
    SandboxFailure,
    SandboxLimits,
    SandboxUnavailable,
)
from occ_gym.verifier.screen import ScreenPolicy, ScreenRejection, screen_code
from occ_gym.verifier.verdict import (
    Candidate,
    ExitKind,
    FailureRoot,
    TestCase,
    TestOutcome,
    Verdict,
)
from occ_gym.verifier.verifier import Verifier, judge

__all__ = [
    "ALLOWED_MODULES",
    "Candidate",
    "ExitKind",
    "FailureRoot",
    "SandboxConfig",
    "SandboxFailure",
    "SandboxLimits",
    "SandboxUnavailable",
    "ScreenPolicy",
    "ScreenRejection",
    "TestCase",
    "TestOutcome",
    "Verdict",
    "Verifier",
    "judge",
    "screen_code",
]
