"""Regression tests for what an adversarial review of the verifier found (issue 13).

Each test reproduces one finding against the real sandbox or the host's judge, and, where a
sandbox ran, then checks that every sandbox answers the next request correctly and that
nothing is left behind (``verify_then_check_clean``).
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time

import pytest

from occ_gym.verifier import (
    Candidate,
    ExitKind,
    SandboxConfig,
    SandboxLimits,
    TestCase,
    Verdict,
    Verifier,
    judge,
    screen_code,
)
from occ_gym.verifier.protocol import WireError, decode_value, encode_value
from occ_gym.verifier.sandbox import available_cores
from occ_gym.verifier.screen import DEFAULT_POLICY
from tests.helpers import BUDGET, SANDBOX_UID_BASE, answer, verify_then_check_clean
from tests.leak_probe import ROUTES, marker, probe, victim

MERSENNE = (1 << 61) - 1
"""Every multiple of this int has hash 0: the hash-flooding value."""


@pytest.fixture(scope="module")
def lone():
    """One sandbox (so consecutive candidates meet the same one), screen off unless set."""
    config = SandboxConfig(
        workers=1, limits=SandboxLimits(cpu_s=2.0), child_uid_base=SANDBOX_UID_BASE
    )
    with Verifier(config, screen=None) as verifier:
        yield verifier


def one_test(code: str, expected, *args, cpu_s: float | None = None, **case) -> Candidate:
    return Candidate(code, "f", (TestCase(args or (1,), expected, **case),), cpu_s=cpu_s)


def stream(*records) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


# --- isolation between candidates ---------------------------------------------------------


def test_the_probe_finds_a_marker_it_planted_itself(lone):
    """The leakage tests below are not vacuous: the probe reads megabytes and finds a plant."""
    verdict = lone.verify(one_test(probe("typing_sys", plant=True), None, cpu_s=5.0))
    got = verdict.tests[0].got
    assert got.startswith("returned (['own memory'], "), got
    assert int(got.split(", ")[-1].rstrip(")")) > 1 << 20


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_no_candidate_reads_an_earlier_candidates_code_input_output_or_files(lone, route):
    code = probe(route)
    assert screen_code(code) is None  # the screen is a courtesy filter: each route passes it
    secret = marker()
    for _ in range(2):
        assert lone.verify(Candidate(victim(), "f", (TestCase((secret,), secret * 2),))).passed
    lone.screen = DEFAULT_POLICY
    try:
        verdict = verify_then_check_clean(lone, one_test(code, None, cpu_s=5.0))
    finally:
        lone.screen = None
    assert verdict.tests[0].got.startswith("returned ([], "), verdict.feedback()


def test_ipc_objects_and_anonymous_files_are_denied(lone):
    code = (
        "import ctypes, os\n"
        "def f(x):\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    out = []\n"
        "    for call in (lambda: libc.shmget(0, 1 << 30, 0o1600),\n"
        "                 lambda: libc.msgget(0, 0o1600),\n"
        "                 lambda: libc.semget(0, 1, 0o1600),\n"
        "                 lambda: libc.mq_open(b'/occ', 0o102, 0o600, None)):\n"
        "        ctypes.set_errno(0)\n"
        "        out.append([call(), ctypes.get_errno()])\n"
        "    for make in (lambda: os.memfd_create('x'), lambda: open('/dev/shm/x', 'w')):\n"
        "        try:\n"
        "            make()\n"
        "            out.append('made')\n"
        "        except OSError as error:\n"
        "            out.append(error.errno)\n"
        "    return out\n"
    )
    verdict = verify_then_check_clean(lone, one_test(code, [[-1, 1]] * 4 + [1, 30]))
    assert verdict.passed, verdict.feedback()  # EPERM from seccomp; EROFS for /dev/shm


# --- the host judges, it never raises -----------------------------------------------------


CRAFTED = {
    "complex part over float range": stream(
        {"load": "ok"}, {"i": 0, "out": {"__occ__": "complex", "v": [10**300 * 10**100, 0]}}
    ),
    "complex with one part": stream(
        {"load": "ok"}, {"i": 0, "out": {"__occ__": "complex", "v": [1]}}
    ),
    "dict pair of one": stream({"load": "ok"}, {"i": 0, "out": {"__occ__": "dict", "v": [[1]]}}),
    "dict with unhashable key": stream(
        {"load": "ok"}, {"i": 0, "out": {"__occ__": "dict", "v": [[[1], 2]]}}
    ),
    "bad hex int": stream({"load": "ok"}, {"i": 0, "out": {"__occ__": "int", "v": "xyz"}}),
    "bad float tag": stream({"load": "ok"}, {"i": 0, "out": {"__occ__": "float", "v": "1e999"}}),
    "string index": stream({"load": "ok"}, {"i": "0", "out": 1}),
    "record without output": stream({"load": "ok"}, {"i": 0}),
    "truthy not a bool": stream({"load": "ok"}, {"i": 0, "unsendable": "X", "truthy": 7}),
    "done not a number": stream({"load": "ok"}, {"i": 0, "out": 1}, {"done": "all"}),
    "load error without type": stream({"load": "error"}),
    "jail not a string": stream({"jail": [1, 2]}),
    "int of 5000 digits": '{"load":"ok"}\n{"i":0,"out":' + "7" * 5000 + "}\n",
    "nested 100000 deep": '{"load":"ok"}\n{"i":0,"out":' + "[" * 100_000 + "]" * 100_000 + "}\n",
    "not utf-8": b'{"load":"ok"}\n{"i":0,"out":"\xff\xfe"}\n',
    "a list, not an object": "[1, 2]\n",
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_result_records_give_a_verdict(name):
    verdict = judge(one_test("", 1), answer(CRAFTED[name]), BUDGET)
    assert isinstance(verdict, Verdict) and not verdict.passed
    assert verdict.exit_kind in {
        ExitKind.PROTOCOL,
        ExitKind.WRONG_ANSWER,
        ExitKind.EXCEPTION,
        ExitKind.CRASH,  # a forged "sandbox setup failed" record
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"signal": 40, "exit_code": None},  # a real-time signal: signal.Signals(40) raises
        {"signal": 200, "exit_code": None},
        {"payload": "not base64!"},
        {"payload": 5},
        {"wall_s": "soon"},
        {"cpu_exceeded": None, "timed_out": None},
    ],
)
def test_crafted_answers_give_a_verdict(overrides):
    base = answer(stream({"load": "ok"}))
    verdict = judge(one_test("", 1), {**base, **overrides}, BUDGET)
    assert isinstance(verdict, Verdict) and not verdict.passed
    if overrides.get("signal") == 40:
        assert verdict.exit_kind is ExitKind.CRASH and "SIGRTMIN+" in verdict.message


def test_a_missing_answer_field_gives_a_verdict():
    for key in answer(""):
        broken = answer(stream({"load": "ok"}, {"i": 0, "out": 1}, {"done": 1}))
        del broken[key]
        assert isinstance(judge(one_test("", 1), broken, BUDGET), Verdict)


def test_random_streams_and_records_always_give_a_verdict():
    rng = random.Random(13)
    atoms = [None, True, 0, -1, 2**70, 1.5, "x", "__occ__", "i", "out", "done", "load", [], {}]
    tags = ["int", "float", "tuple", "set", "frozenset", "dict", "bytes", "complex", "??"]

    def value(depth: int):
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return rng.choice(atoms)
        if roll < 0.6:
            return [value(depth + 1) for _ in range(rng.randrange(3))]
        if roll < 0.8:
            return {"__occ__": rng.choice(tags), "v": value(depth + 1)}
        return {rng.choice(["i", "out", "done", "load", "type"]): value(depth + 1)}

    def record(position: int):
        kind = rng.random()
        if kind < 0.5:
            return {"i": position if rng.random() < 0.8 else value(2), "out": value(0)}
        return value(0) if kind < 0.8 else {"done": rng.choice([1, 2, "x", None])}

    candidate = Candidate("", "f", (TestCase((1,), 1), TestCase((2,), (2,))))
    for trial in range(3000):
        if trial % 3 == 0:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        else:
            records = [{"load": "ok"}] + [record(i) for i in range(rng.randrange(4))]
            payload = "".join(json.dumps(r) + "\n" for r in records).encode()
            if trial % 3 == 2 and payload:
                cut = rng.randrange(len(payload))
                payload = payload[:cut] + bytes([rng.randrange(256)]) + payload[cut + 1 :]
        overrides = {"signal": rng.choice([None, 9, 11, 24, 25, 34, 64])}
        verdict = judge(candidate, answer(payload, **overrides), BUDGET)
        assert isinstance(verdict, Verdict), payload


def test_a_hash_flooded_set_is_judged_in_bounded_time():
    flood = [k * MERSENNE for k in range(40_000)]  # 820 KiB, one hash: was 14 s on the host
    record = {"i": 0, "out": {"__occ__": "set", "v": [encode_value(k) for k in flood]}}
    payload = stream({"load": "ok"}, record, {"done": 1})
    started = time.perf_counter()
    verdict = judge(one_test("", {1, 2}), answer(payload), BUDGET)
    assert time.perf_counter() - started < 2.0
    assert verdict.exit_kind is ExitKind.WRONG_ANSWER
    assert "share one hash" in verdict.tests[0].got
    assert decode_value(encode_value({MERSENNE, 2 * MERSENNE})) == {MERSENNE, 2 * MERSENNE}


def test_big_ints_cross_exactly_and_are_compared_exactly():
    huge = math.factorial(2000)  # 5,736 digits: over Python's 4,300-digit str() limit
    for value in (huge, -huge, 2**53, -(2**53) - 1, [huge, {huge: (huge,)}]):
        assert decode_value(json.loads(json.dumps(encode_value(value)))) == value
    with pytest.raises(WireError):
        decode_value({"__occ__": "int", "v": "-"})


def test_raising_values_from_a_real_candidate_get_verdicts(lone):
    complex_lie = (
        "class C(complex):\n    real = property(lambda self: 10**400)\n"
        "def f(x):\n    return C(1, 2)\n"
    )
    verdict = verify_then_check_clean(lone, one_test(complex_lie, complex(1, 2)))
    assert verdict.passed, verdict.feedback()  # the base value crosses, not the property
    big = one_test("def f(x):\n    return 10**400\n", 0.5, abs_tol=1e-6)
    overflow = verify_then_check_clean(lone, big)
    assert overflow.exit_kind is ExitKind.WRONG_ANSWER
    realtime = (
        "import signal, threading\n"
        "def f(x):\n    signal.pthread_kill(threading.get_ident(), 40)\n    return x\n"
    )
    signalled = verify_then_check_clean(lone, one_test(realtime, 1))
    assert signalled.error_type == "PermissionError", signalled.feedback()  # tgkill is denied
    huge = math.factorial(2000)
    code = "import math\ndef f(x):\n    return math.factorial(2000) + x - x\n"
    verdict = verify_then_check_clean(lone, one_test(code, huge, huge))
    assert verdict.passed, verdict.feedback()
    assert "<int of" in one_test("", huge).tests[0].expected_text


def test_a_hash_flooded_set_from_a_real_candidate_is_judged_in_bounded_time(lone):
    # building such a set is quadratic in the child too, so the candidate writes the record
    code = (
        "import os\ndef f(x):\n"
        f"    items = ','.join(str(k * {MERSENNE}) for k in range(40_000))\n"
        '    head = \'{"i":0,"out":{"__occ__":"set","v":[\'\n'
        "    os.write(3, (head + items + ']}}\\n').encode())\n"
        "    os._exit(0)\n"
    )
    started = time.perf_counter()
    verdict = verify_then_check_clean(lone, one_test(code, {1}))
    assert time.perf_counter() - started < 10.0
    assert verdict.exit_kind is ExitKind.WRONG_ANSWER


# --- fair limits --------------------------------------------------------------------------


def test_garbage_collection_works_in_the_child(lone):
    code = (
        "def f(x):\n"
        "    for _ in range(4000):\n"
        "        cycle = [bytearray(512 << 10)]\n"
        "        cycle.append(cycle)\n"  # 2 GiB of cycles without a collector; 1 GiB limit
        "    return x\n"
    )
    verdict = verify_then_check_clean(lone, one_test(code, 1, cpu_s=5.0))
    assert verdict.passed, verdict.feedback()


def test_cpu_bound_correct_code_passes_next_to_spinning_neighbours(sandbox):
    from tests.helpers import LEGIT

    spin = "def f(x):\n    while True:\n        pass\n"
    busy = (
        "import time\ndef f(x):\n    end = time.process_time() + 1.0\n"
        "    while time.process_time() < end:\n        pass\n    return x\n"
    )
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        verdicts = sandbox.verify_many([one_test(spin, 1), one_test(busy, 1), one_test(spin, 1)])
    finally:
        hog.kill()
        hog.wait()
    assert verdicts[1].passed, verdicts[1].feedback()  # 1 s of CPU within a 1.5 s budget
    assert verdicts[0].limit == "cpu" and verdicts[0].exit_kind is ExitKind.TIMEOUT
    assert verify_then_check_clean(sandbox, LEGIT).passed


def test_each_verdict_names_the_limit_it_met():
    limits = SandboxLimits(cpu_s=0.5, wall_s=1.5, file_bytes=1 << 16)
    config = SandboxConfig(workers=1, limits=limits, child_uid_base=SANDBOX_UID_BASE)
    codes = {
        "cpu": "def f(x):\n    while True:\n        pass\n",
        "wall": "import time\ndef f(x):\n    time.sleep(60)\n",
        "memory": "def f(x):\n    return [0] * 10**10\n",
        "output": "import os\ndef f(x):\n    os.write(3, b'x' * (5 << 20))\n",
        "file_size": "def f(x):\n    open('big', 'w').write('x' * 10**6)\n    return x\n",
    }
    with Verifier(config, screen=None) as verifier:
        verdicts = {name: verifier.verify(one_test(code, 1)) for name, code in codes.items()}
    assert {name: v.limit for name, v in verdicts.items()} == {name: name for name in codes}
    assert verdicts["wall"].exit_kind is ExitKind.TIMEOUT
    assert "wall-clock backstop of 1.5 s" in verdicts["wall"].message
    assert "CPU budget of 0.5 s" in verdicts["cpu"].message


def test_the_pool_never_runs_more_candidates_than_cores():
    with Verifier(SandboxConfig(workers=64, child_uid_base=SANDBOX_UID_BASE)) as verifier:
        assert verifier.pool.workers == len(verifier.pool.servers) == available_cores()


# --- the sandbox survives its candidate ---------------------------------------------------


def test_a_deep_directory_tree_is_cleaned_up(lone):
    code = (
        "import os\ndef f(x):\n"
        "    for _ in range(3000):\n        os.mkdir('d')\n        os.chdir('d')\n"
        "    open('leaf', 'w').close()\n    return x\n"
    )
    starts = lone.pool.servers[0].starts
    verdict = verify_then_check_clean(lone, one_test(code, 1))
    assert verdict.passed, verdict.feedback()
    assert lone.pool.servers[0].starts == starts


def test_odd_names_are_cleaned_up(lone):
    code = (
        "import os\ndef f(x):\n"
        "    for name in (b'\\xff\\xfe', b'new\\nline', b'-rf', b' ', b'.hidden'):\n"
        "        os.mkdir(name)\n        open(os.path.join(name, b'\\x01'), 'w').close()\n"
        "    os.symlink('/usr', 'link')\n    os.chmod(b'-rf', 0)\n    return x\n"
    )
    verdict = verify_then_check_clean(lone, one_test(code, 1))
    assert verdict.passed, verdict.feedback()


def test_a_file_creation_loop_is_cleaned_up(lone):
    code = (
        "def f(x):\n    i = 0\n    while True:\n"
        "        open(f'file{i}', 'w').close()\n        i += 1\n"
    )
    verdict = verify_then_check_clean(lone, one_test(code, 1))
    assert verdict.exit_kind is ExitKind.TIMEOUT and verdict.limit == "cpu"


@pytest.mark.parametrize(
    "size, kind", [(3 << 20, ExitKind.PROTOCOL), (6 << 20, ExitKind.OUTPUT_LIMIT)]
)
def test_a_non_utf8_flood_is_a_verdict_not_a_dead_sandbox(lone, size, kind):
    code = f"import os\ndef f(x):\n    os.write(3, b'\\xff' * {size})\n    return x\n"
    starts = lone.pool.servers[0].starts
    verdict = verify_then_check_clean(lone, one_test(code, 1))
    assert verdict.exit_kind is kind, verdict.feedback()
    assert lone.pool.servers[0].starts == starts


def test_a_candidate_cannot_signal_its_relay_or_zygote(lone):
    code = (
        "import ctypes, os\n"
        "def f(x):\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    tgkill = {'x86_64': 234, 'aarch64': 131}[os.uname().machine]\n"
        "    others = [pid for pid in range(1, 32) if pid != os.getpid()]\n"
        "    sent = [libc.syscall(tgkill, pid, pid, 9) for pid in others]\n"
        "    return sorted(set(sent)), ctypes.get_errno()\n"
    )
    starts = lone.pool.servers[0].starts
    verdict = verify_then_check_clean(lone, one_test(code, ([-1], 1)))
    assert verdict.passed, verdict.feedback()  # EPERM from seccomp for every target
    assert lone.pool.servers[0].starts == starts
    aborts = verify_then_check_clean(lone, one_test("import os\ndef f(x):\n    os.abort()\n", 1))
    assert aborts.exit_kind is ExitKind.CRASH


def test_a_sandbox_that_cannot_clean_up_in_time_is_replaced_without_losing_a_verdict():
    limits = SandboxLimits(cpu_s=1.0, cleanup_s=0.001)
    config = SandboxConfig(workers=1, limits=limits, child_uid_base=SANDBOX_UID_BASE)
    code = (
        "import os\ndef f(x):\n    for i in range(300):\n"
        "        os.mkdir(f'd{i}')\n        open(f'd{i}/file', 'w').close()\n    return x\n"
    )
    with Verifier(config, screen=None) as verifier:
        server = verifier.pool.servers[0]
        starts = server.starts
        verdict = verify_then_check_clean(verifier, one_test(code, 1))
        assert verdict.passed, verdict.feedback()
        assert server.starts == starts + 1  # retired after answering, then started afresh


# --- found by an adversarial review of this change ----------------------------------------


def test_a_restart_in_a_host_holding_over_1024_fds_still_gives_verdicts(lone):
    import os

    from tests.helpers import LEGIT

    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        server = lone.pool.servers[0]
        os.killpg(server.pid, 9)  # the next request restarts it, with fds above select()'s 1024
        verdicts = [lone.submit(LEGIT) for _ in range(3)]
        assert all(isinstance(future.result(timeout=60), Verdict) for future in verdicts)
        assert lone.verify(LEGIT).passed
    finally:
        for fd in held:
            os.close(fd)


def test_non_finite_budgets_are_refused():
    with pytest.raises(ValueError, match="finite"):
        Candidate("def f(x):\n    return x\n", "f", (TestCase((1,), 1),), cpu_s=math.inf)
    with pytest.raises(ValueError, match="finite"):
        SandboxLimits(cpu_s=math.nan)


def host_checked(suite: str, code: str = "def f(x):\n    return len(x)\n") -> Candidate:
    from occ_gym.verifier import HostCheck

    return Candidate(code, "f", host_check=HostCheck(suite))


def test_a_host_check_sends_arguments_as_they_were_when_called(lone):
    suite = (
        "def check(c):\n    xs = [1]\n    assert c(xs) == 1\n"
        "    xs.append(2)\n    assert c(xs) == 2\n"
    )
    verdict = lone.verify(host_checked(suite))
    assert verdict.passed, verdict.feedback()


def test_a_host_check_that_cannot_be_run_fails_at_once(lone):
    unsendable = lone.verify(host_checked("def check(c):\n    assert c(object()) == 0\n"))
    assert unsendable.exit_kind is ExitKind.CRASH and "cannot receive" in unsendable.message
    many = "def check(c):\n    for i in range(10**6):\n        assert c([0] * (i % 3)) == i % 3\n"
    started = time.perf_counter()
    too_many = lone.verify(host_checked(many))
    assert too_many.exit_kind is ExitKind.CRASH and "more than" in too_many.message
    assert time.perf_counter() - started < 30
