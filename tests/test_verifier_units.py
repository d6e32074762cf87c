"""The verifier's parts on their own: wire format, screen, and the host's judgement."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from occ_gym.attempt import ErrorKind
from occ_gym.verifier import (
    Candidate,
    ExitKind,
    FailureRoot,
    SandboxConfig,
    SandboxUnavailable,
    TestCase,
    Verifier,
    judge,
    screen_code,
)
from occ_gym.verifier.protocol import WireError, decode_value, encode_value, loads
from occ_gym.verifier.sandbox import SandboxServer
from tests.helpers import BUDGET, answer

CANDIDATE = Candidate(
    "def f(x):\n    return x\n", "f", (TestCase((1,), 1), TestCase((2,), 2), TestCase((3,), 3))
)


GOOD = '{"load":"ok"}\n{"i":0,"out":1}\n{"i":1,"out":2}\n{"i":2,"out":3}\n{"done":3}\n'


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(10**30),
        1.5,
        math.inf,
        "text",
        [1, [2, (3, "x")]],
        (1, 2),
        {1: "a", (2, 3): [4]},
        {"a": {1, 2}},
        frozenset({1}),
        b"\x00\xff",
        1 + 2j,
    ],
)
def test_values_cross_the_wire_unchanged(value):
    decoded = decode_value(loads(_dumps(encode_value(value)))["v"])
    assert decoded == value
    assert type(decoded) is type(value)


def _dumps(data) -> bytes:
    import json

    return json.dumps({"v": data}).encode()


def test_nan_crosses_the_wire_as_nan():
    decoded = decode_value(loads(_dumps(encode_value(math.nan)))["v"])
    assert math.isnan(decoded)


def test_subclass_overrides_do_not_cross_the_wire():
    class Liar(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    encoded = encode_value(Liar(3))
    assert type(encoded) is int and encoded == 3


@pytest.mark.parametrize("data", [{"__occ__": "tuple"}, {"__occ__": "evil", "v": 1}, {"x": 1}])
def test_malformed_values_are_refused(data):
    with pytest.raises(WireError):
        decode_value(data)


def test_too_deep_values_are_refused():
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(WireError, match="deeper"):
        encode_value(deep)


@pytest.mark.parametrize(
    "code, kind, reason",
    [
        ("def f(:\n", "syntax", "SyntaxError"),
        ("import os\n", "safety", "'os'"),
        ("from subprocess import run\n", "safety", "'subprocess'"),
        ("import numpy\n", "import", "no module named 'numpy'"),
        ("from . import x\n", "safety", "relative"),
        ("eval('1')\n", "safety", "eval()"),
        ("exec('1')\n", "safety", "exec()"),
        ("open('f')\n", "safety", "open()"),
        ("__import__('os')\n", "safety", "__import__()"),
        ("().__class__.__base__.__subclasses__()\n", "safety", "'__subclasses__'"),
        ("x.__class__\n", "safety", "'__class__'"),
        ("getattr(x, '__globals__')\n", "safety", "'__globals__'"),
        ("getattr(x, name)\n", "safety", "computed"),
        ("__builtins__\n", "safety", "'__builtins__'"),
        ("x = 1\n" * 50_000, "safety", "longer"),
    ],
)
def test_screen_rejects_with_a_reason(code, kind, reason):
    rejection = screen_code(code)
    assert rejection is not None
    assert rejection.kind == kind
    assert reason in rejection.reason


@pytest.mark.parametrize(
    "code",
    [
        "import math\nfrom collections import Counter\n",
        "class A:\n    def __init__(self):\n        self.x = 1\n    def __eq__(self, o):\n"
        "        return True\n",
        "def f(x):\n    return getattr(x, 'real')\n",
        "if __name__ == '__main__':\n    pass\n",
    ],
)
def test_screen_lets_ordinary_code_through(code):
    assert screen_code(code) is None


def test_judge_passes_only_confirmed_outputs():
    verdict = judge(CANDIDATE, answer(GOOD), BUDGET)
    assert verdict.passed and verdict.exit_kind is ExitKind.OK
    assert verdict.tests_passed == 3 and verdict.error_kind is ErrorKind.NONE
    assert verdict.feedback() == "All 3 tests passed."


def test_judge_reports_the_first_wrong_answer():
    payload = GOOD.replace('{"i":1,"out":2}', '{"i":1,"out":[2]}')
    verdict = judge(CANDIDATE, answer(payload), BUDGET)
    assert not verdict.passed
    assert verdict.exit_kind is ExitKind.WRONG_ANSWER
    assert verdict.failure_root is FailureRoot.SEMANTIC
    assert verdict.first_failure.index == 1
    assert "f(2) returned [2]; expected 2" in verdict.feedback()


@pytest.mark.parametrize(
    "payload, overrides, kind",
    [
        ('{"load":"ok"}\n{"i":0,"out":1}\n', {"timed_out": True}, ExitKind.TIMEOUT),
        ('{"load":"ok"}\n', {"signal": 11, "exit_code": None}, ExitKind.CRASH),
        ('{"load":"ok"}\n', {"signal": 24, "exit_code": None}, ExitKind.TIMEOUT),
        ('{"load":"ok"}\n', {"signal": 25, "exit_code": None}, ExitKind.OUTPUT_LIMIT),
        ('{"load":"ok"}\n{"i":0,"out":1}\n', {"over_limit": True}, ExitKind.OUTPUT_LIMIT),
        ('{"load":"ok"}\n{"i":0,"out":1}\n', {}, ExitKind.EARLY_EXIT),
        ("", {}, ExitKind.EARLY_EXIT),
        ('{"done":3}\n', {}, ExitKind.PROTOCOL),
        ('{"load":"ok"}\n{"done":3}\n', {}, ExitKind.PROTOCOL),
        ('{"load":"ok"}\n{"i":1,"out":2}\n', {}, ExitKind.PROTOCOL),
        (GOOD + '{"i":0,"out":1}\n', {}, ExitKind.PROTOCOL),
        ("passed\n", {}, ExitKind.PROTOCOL),
        ('{"load":"ok"}\n{"i":0,"out":{"__occ__":"x","v":1}}\n', {}, ExitKind.PROTOCOL),
        (GOOD, {"timed_out": True}, ExitKind.TIMEOUT),
        ('{"load":"error","type":"ImportError","message":"m"}\n', {}, ExitKind.EXCEPTION),
        ('{"load":"ok"}\n{"i":0,"type":"MemoryError","message":""}\n', {}, ExitKind.MEMORY),
    ],
)
def test_judge_fails_closed(payload, overrides, kind):
    verdict = judge(CANDIDATE, answer(payload, **overrides), BUDGET)
    assert not verdict.passed
    assert verdict.exit_kind is kind
    assert verdict.tests_total == 3


def test_failed_import_is_its_own_root():
    payload = '{"load":"error","type":"ModuleNotFoundError","message":"no numpy"}\n'
    verdict = judge(CANDIDATE, answer(payload), BUDGET)
    assert verdict.failure_root is FailureRoot.IMPORT
    assert verdict.error_kind is ErrorKind.IMPORT


def test_tolerance_follows_humaneval():
    case = TestCase((1,), 0.5, abs_tol=1e-6)
    assert case.accepts(0.5 + 1e-7)
    assert not case.accepts(0.5 + 1e-5)
    assert not case.accepts(math.nan) and not case.accepts("0.5") and not case.accepts(None)
    assert TestCase((1,), 1.0, abs_tol=1e-6).accepts(True)  # abs(True - 1.0) < 1e-6 holds
    assert TestCase((1,), 0.0, abs_tol=1e-6).accepts(complex(0, 1e-9))


def test_candidate_refuses_bad_input():
    with pytest.raises(ValueError, match="identifier"):
        Candidate("", "not an identifier", (TestCase((), 1),))
    with pytest.raises(ValueError, match="tests or a host check"):
        Candidate("", "f")
    with pytest.raises(TypeError, match="tuple"):
        TestCase([1], 1)  # type: ignore[arg-type]


def test_missing_bubblewrap_is_a_clear_error():
    with pytest.raises(SandboxUnavailable, match="bubblewrap binary"):
        Verifier(SandboxConfig(workers=1, bwrap="/nonexistent/bwrap"))


def test_missing_seccomp_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyseccomp", None)
    with pytest.raises(SandboxUnavailable, match="seccomp"):
        Verifier(SandboxConfig(workers=1))


def test_bwrap_that_refuses_to_start_is_a_clear_error(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: no permission to create namespaces' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match="no permission to create namespaces"):
        Verifier(SandboxConfig(workers=1, bwrap=str(fake)))


def test_stopping_a_server_that_died_unread_closes_every_pipe():
    """A server that exits before reading its settings must not make stop() raise BrokenPipe."""
    process = subprocess.Popen(
        ["sh", "-c", "exec 0<&-; echo closed"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stdout.readline() == b"closed\n"
    process.wait()
    assert process.stdin is not None
    process.stdin.write(b"settings the server never read")
    server = SandboxServer(["true"], {}, start_timeout_s=1.0)
    server._process = process
    server.stop()
    assert process.stdin.closed and process.stdout.closed and process.stderr.closed
    assert not server.alive()


def test_screen_rejection_never_reaches_the_sandbox(verifier):
    verdict = verifier.verify(
        Candidate("import os\ndef f(x):\n    return x\n", "f", (TestCase((1,), 1),))
    )
    assert verdict.exit_kind is ExitKind.SAFETY
    assert verdict.wall_s == 0.0
    assert "import of 'os' is not allowed (line 1)" in verdict.feedback()


def test_feedback_names_the_failing_call(verifier):
    code = "def mean(xs):\n    return sum(xs) / len(xs)\n"
    tests = (TestCase(([2, 4],), 3.0), TestCase(([],), 0.0))
    verdict = verifier.verify(Candidate(code, "mean", tests))
    assert verdict.tests_passed == 1
    assert verdict.exit_kind is ExitKind.EXCEPTION
    assert "mean([]) raised ZeroDivisionError: division by zero; expected 0.0" in verdict.feedback()


def test_readme_verifier_example_prints_what_it_says(capsys):
    section = (Path(__file__).parents[1] / "docs" / "verifier.md").read_text()
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/verifier.md", "exec"), {})
    promised = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    assert capsys.readouterr().out.splitlines() == promised


def test_readme_humaneval_counts_are_current():
    from occ_gym.tasks.humaneval import load_humaneval

    readme = " ".join((Path(__file__).parents[1] / "docs" / "verifier.md").read_text().split())
    on_host = sum(p.check is not None for p in load_humaneval())
    assert f"converts {164 - on_host} `check` suites" in readme
    assert f"the other {on_host} run their suite on the host" in readme


def test_a_candidates_own_cpu_budget_replaces_the_sandboxs():
    from occ_gym.verifier import SandboxLimits

    busy = "import time\ndef f(x):\n    end = time.process_time() + 1.5\n"
    busy += "    while time.process_time() < end:\n        pass\n    return x\n"
    config = SandboxConfig(workers=1, limits=SandboxLimits(cpu_s=1.0))
    with Verifier(config) as verifier:
        short = verifier.verify(Candidate(busy, "f", (TestCase((1,), 1),)))
        long = verifier.verify(Candidate(busy, "f", (TestCase((1,), 1),), cpu_s=3.0))
    assert short.exit_kind is ExitKind.TIMEOUT and short.limit == "cpu"
    assert "CPU budget of 1 s" in short.message
    assert long.passed, long.feedback()
