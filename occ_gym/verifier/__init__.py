"""The verifier: a bubblewrap + seccomp sandbox whose verdicts hostile code cannot forge.

Every candidate runs in a child forked from a zygote that never saw another candidate, so no
candidate can read another's code, inputs or outputs; the host judges every output itself and
never raises on anything a candidate writes.

>>> from occ_gym.verifier import Candidate, TestCase, Verifier
>>> with Verifier() as verifier:
...     verdict = verifier.verify(
...         Candidate("def double(x):\\n    return 2 * x\\n", "double", (TestCase((2,), 4),))
...     )
>>> verdict.passed
True
"""

from occ_gym.verifier.judge import Budget, judge
from occ_gym.verifier.protocol import ALLOWED_MODULES
from occ_gym.verifier.sandbox import (
    SandboxConfig,
    SandboxFailure,
    SandboxLimits,
    SandboxUnavailable,
)
from occ_gym.verifier.screen import ScreenPolicy, ScreenRejection, screen_code
from occ_gym.verifier.verdict import (
    LIMITS,
    Candidate,
    Compare,
    ExitKind,
    FailureRoot,
    HostCheck,
    Returned,
    TestCase,
    TestOutcome,
    Verdict,
)
from occ_gym.verifier.verifier import Verifier

__all__ = [
    "ALLOWED_MODULES",
    "LIMITS",
    "Budget",
    "Candidate",
    "Compare",
    "ExitKind",
    "FailureRoot",
    "HostCheck",
    "Returned",
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
