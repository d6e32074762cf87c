"""Hostile candidates against the real sandbox (screen off): each must fail to escape or to
forge a pass, and the server must answer the next request correctly with nothing left over."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import pytest

from occ_gym.verifier import Candidate, ExitKind, TestCase
from tests.helpers import (
    LEGIT,
    MARKER,
    SANDBOX_WORKERS,
    descendants,
    open_fds,
    sandbox_processes,
    server_tmp_entries,
    verify_then_check_clean,
)

PROJECT_FILE = Path(__file__).resolve().parents[1] / "README.md"
SECRET = 918_273_645
"""An expected output the sandbox never sees: only the host knows it."""


def run_hostile(sandbox, code: str, expected=SECRET, entry_point: str = "f", cpu_s=None):
    """Verify a hostile candidate, then check the sandbox is healthy and left nothing."""
    candidate = Candidate(code, entry_point, (TestCase((1,), expected),), cpu_s=cpu_s)
    return verify_then_check_clean(sandbox, candidate)


HOSTILE = {
    "infinite_loop": ("def f(x):\n    while True:\n        pass\n", ExitKind.TIMEOUT),
    "sigalrm_ignored": (
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "def f(x):\n    signal.alarm(1)\n    while True:\n        pass\n",
        ExitKind.TIMEOUT,
    ),
    "huge_allocation": ("def f(x):\n    return [0] * 10**10\n", ExitKind.MEMORY),
    "slow_list_growth": (
        "def f(x):\n    grown = []\n    while True:\n        grown.append(bytearray(4 << 20))\n",
        {ExitKind.MEMORY, ExitKind.TIMEOUT},  # whichever limit the machine's speed meets first
    ),
    "os_fork_loop": (
        "import os\ndef f(x):\n    while True:\n        os.fork()\n",
        ExitKind.EXCEPTION,
    ),
    "posix_fork_loop": (
        "import posix\ndef f(x):\n    while True:\n        posix.fork()\n",
        ExitKind.EXCEPTION,
    ),
    "posix_spawn": (
        "import os\ndef f(x):\n    return os.posix_spawn('/usr/bin/true', ['true'], {})\n",
        ExitKind.EXCEPTION,
    ),
    "write_outside_work_dir": (
        f"def f(x):\n    open({MARKER!r}, 'w').write('x')\n    return x\n",
        ExitKind.EXCEPTION,
    ),
    "write_to_system_dir": (
        "def f(x):\n    open('/usr/occ-gym-escaped', 'w').write('x')\n",
        ExitKind.EXCEPTION,
    ),
    "read_etc_passwd": ("def f(x):\n    return open('/etc/passwd').read()\n", ExitKind.EXCEPTION),
    "read_project_file": (
        f"def f(x):\n    return open({str(PROJECT_FILE)!r}).read()\n",
        ExitKind.EXCEPTION,
    ),
    "write_a_file_over_the_limit": (
        "def f(x):\n    open('big', 'w').write('x' * (4 << 20))\n    return x\n",
        ExitKind.OUTPUT_LIMIT,
    ),
    "c_level_crash": (
        "import ctypes\ndef f(x):\n    return ctypes.string_at(0)\n",
        ExitKind.CRASH,
    ),
    "c_recursion_crash": (
        "import sys\nsys.setrecursionlimit(10**8)\ndef f(x):\n    return list(map(f, [x]))\n",
        ExitKind.CRASH,
    ),
    "kill_parent_os": ("import os\ndef f(x):\n    os.kill(os.getppid(), 9)\n", ExitKind.EXCEPTION),
    "kill_init_posix": ("import posix\ndef f(x):\n    posix.kill(1, 9)\n", ExitKind.EXCEPTION),
    "killpg_everything": ("import os\ndef f(x):\n    os.kill(-1, 9)\n", ExitKind.EXCEPTION),
    "early_sys_exit": ("import sys\nsys.exit(0)\ndef f(x):\n    return x\n", ExitKind.EXCEPTION),
    "exit_inside_call": ("import sys\ndef f(x):\n    sys.exit(0)\n", ExitKind.EXCEPTION),
    "early_os_exit": ("import os\ndef f(x):\n    os._exit(0)\n", ExitKind.EARLY_EXIT),
    "forge_result_fd_at_load": (
        "import os\n"
        'os.write(3, b\'{"load":"ok"}\\n{"i":0,"out":1}\\n{"done":1}\\n\')\n'
        "os._exit(0)\n",
        ExitKind.WRONG_ANSWER,
    ),
    "forge_every_fd": (
        "import os\ndef f(x):\n"
        "    for fd in range(64):\n"
        "        try:\n"
        "            os.write(fd, b'passed\\n{\"done\":1}\\n')\n"
        "        except OSError:\n"
        "            pass\n"
        "    os._exit(0)\n",
        ExitKind.PROTOCOL,
    ),
    "frame_walking": (
        "import sys, os\ndef f(x):\n"
        "    frame = sys._getframe(1)\n"
        "    frame.f_locals['send']({'done': 1})\n"
        "    os._exit(0)\n",
        ExitKind.PROTOCOL,
    ),
    "always_true_eq": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def f(x):\n    return Anything()\n",
        ExitKind.WRONG_ANSWER,
    ),
    "int_subclass_eq": (
        "class Anything(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n"
        "def f(x):\n    return Anything(0)\n",
        ExitKind.WRONG_ANSWER,
    ),
    "patch_builtins_and_json": (
        "import builtins, json\n"
        'json.dumps = lambda *a, **k: \'{"i":0,"out":%d}\' % 1\n'
        "builtins.isinstance = lambda *a: True\n"
        "def f(x):\n    return 0\n",
        ExitKind.EARLY_EXIT,
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_candidate_neither_escapes_nor_passes(sandbox, name):
    code, exit_kinds = HOSTILE[name]
    verdict = run_hostile(sandbox, code)
    assert not verdict.passed
    allowed = exit_kinds if isinstance(exit_kinds, set) else {exit_kinds}
    assert verdict.exit_kind in allowed, verdict.feedback()


@pytest.mark.parametrize(
    "name, code",
    [
        ("os_system", "import os\ndef f(x):\n    return os.system('touch " + MARKER + "')\n"),
        (
            "posix_system",
            "import posix\ndef f(x):\n    return posix.system('touch " + MARKER + "')\n",
        ),
        (
            "subclasses_escape",
            "def f(x):\n"
            "    wrap = [c for c in ().__class__.__base__.__subclasses__()"
            " if c.__name__ == '_wrap_close'][0]\n"
            "    return wrap.__init__.__globals__['system']('touch " + MARKER + "')\n",
        ),
    ],
)
def test_shell_commands_never_run(sandbox, name, code):
    # glibc's system() reports 127 << 8 when it cannot create the shell's process
    verdict = run_hostile(sandbox, code, expected=127 << 8)
    assert verdict.passed, verdict.feedback()


def test_subprocess_cannot_start(sandbox):
    code = (
        "def f(x):\n"
        "    try:\n"
        "        import subprocess\n"
        "        subprocess.run(['touch', " + repr(MARKER) + "])\n"
        "    except BaseException as error:\n"
        "        return type(error).__name__\n"
    )
    verdict = run_hostile(sandbox, code, expected="never")
    assert not verdict.passed
    assert verdict.tests[0].got.startswith("returned '")


def test_no_network_even_below_python(sandbox):
    code = (
        "import ctypes\n"
        "def f(x):\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    return [libc.socket(2, 1, 0), ctypes.get_errno()]\n"
    )
    verdict = run_hostile(sandbox, code, expected=[-1, 1])  # EPERM from seccomp
    assert verdict.passed, verdict.feedback()


def test_no_connection_to_localhost(sandbox):
    code = (
        "def f(x):\n"
        "    try:\n"
        "        import socket\n"
        "        socket.create_connection(('127.0.0.1', 22), timeout=0.5)\n"
        "        return 'connected'\n"
        "    except BaseException as error:\n"
        "        return 'blocked'\n"
    )
    verdict = run_hostile(sandbox, code, expected="blocked")
    assert verdict.passed, verdict.feedback()


def test_pool_refuses_use_after_fork(sandbox):
    with warnings.catch_warnings():  # Python >= 3.12 warns about fork in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        try:
            sandbox.verify(LEGIT)
        except RuntimeError as error:
            os._exit(0 if "another process" in str(error) else 1)
        os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_killing_a_server_restarts_it(sandbox):
    server = sandbox.pool.servers[0]
    starts = server.starts
    os.killpg(server.pid, 9)
    verdicts = sandbox.verify_many([LEGIT] * (4 * SANDBOX_WORKERS))
    passed = [v.passed for v in verdicts]
    # a request that met the dead server fails as a crash; every later one passes
    assert all(v.passed or v.exit_kind is ExitKind.CRASH for v in verdicts)
    assert passed[-SANDBOX_WORKERS:] == [True] * SANDBOX_WORKERS
    assert server.starts == starts + 1
    assert sandbox.verify(LEGIT).passed


LEGITIMATE = {
    "allowed_stdlib": (
        "import re, math, itertools, collections, functools, heapq, bisect, string\n"
        "def f(x):\n    return math.isqrt(16) == 4 and bool(re.match('a', 'abc'))\n"
    ),
    "threads": (
        "import threading\ndef f(x):\n    out = []\n"
        "    workers = [threading.Thread(target=out.append, args=(i,)) for i in range(4)]\n"
        "    for w in workers:\n        w.start()\n"
        "    for w in workers:\n        w.join()\n"
        "    return sorted(out) == [0, 1, 2, 3]\n"
    ),
    "time_sleep": "import time\ndef f(x):\n    time.sleep(0.05)\n    return True\n",
    "moderate_memory": "def f(x):\n    block = bytearray(200 << 20)\n    return len(block) > 0\n",
    "files_in_work_dir": (
        "def f(x):\n    with open('scratch.txt', 'w') as out:\n        out.write('ok')\n"
        "    return open('scratch.txt').read() == 'ok'\n"
    ),
    "prints": "def f(x):\n    print('debugging', x)\n    return True\n",
    "prints_100_mb": "def f(x):\n    print('x' * 10**8)\n    return True\n",
}


@pytest.mark.parametrize("name", sorted(LEGITIMATE))
def test_legitimate_code_passes(sandbox, name):
    verdict = run_hostile(sandbox, LEGITIMATE[name], expected=True)
    assert verdict.passed, verdict.feedback()


def test_leftover_checks_see_a_running_candidate(sandbox):
    """The process and tmp-file checks above are not vacuous: they see a live child."""
    sleeper = Candidate(
        "import time\ndef f(x):\n    open('trace', 'w').close()\n    time.sleep(1.0)\n",
        "f",
        (TestCase((1,), None),),
    )
    future = sandbox.submit(sleeper)
    seen_process = seen_file = False
    while not future.done() and not (seen_process and seen_file):
        seen_process = seen_process or bool(sandbox_processes())
        seen_file = seen_file or bool(server_tmp_entries(sandbox))
    assert future.result().passed
    assert seen_process and seen_file
    assert sandbox_processes() == [] and server_tmp_entries(sandbox) == []


def server_fd_counts(verifier) -> list[int]:
    """Open fds of every process of every sandbox (bwrap, its init, the relay, the zygote)."""
    counts = []
    for server in verifier.pool.servers:
        for pid in [server.pid, *descendants(server.pid)]:
            counts.append(len(os.listdir(f"/proc/{pid}/fd")))
    return counts


@pytest.mark.parametrize("rounds", [100, pytest.param(834, marks=pytest.mark.slow)])
def test_a_soak_of_candidates_leaves_nothing_behind(sandbox, rounds):
    """600 candidates in make test; 5,004 in make test-all."""
    mix = [
        LEGIT,
        Candidate("def f(x):\n    return x * 2\n", "f", (TestCase((2,), 5),)),
        Candidate("def f(x):\n    return 1 // (x - x)\n", "f", (TestCase((2,), 0),)),
        Candidate("import os\ndef f(x):\n    os.fork()\n", "f", (TestCase((2,), 0),)),
        Candidate(
            "def f(x):\n    open('junk', 'w').write('x' * 1000)\n    return x\n",
            "f",
            (TestCase((2,), 2),),
        ),
        Candidate("import os\ndef f(x):\n    os._exit(3)\n", "f", (TestCase((2,), 2),)),
    ]
    sandbox.verify_many(mix)
    gc.collect()  # files that earlier tests left to the garbage collector close now, not mid-soak
    fds, server_fds, starts = open_fds(), server_fd_counts(sandbox), _starts(sandbox)
    verdicts = sandbox.verify_many(mix * rounds)
    assert len(verdicts) == len(mix) * rounds
    expected = [True, False, False, False, True, False] * rounds
    assert [v.passed for v in verdicts] == expected
    assert sandbox_processes() == []
    assert server_tmp_entries(sandbox) == []
    assert open_fds() == fds
    assert server_fd_counts(sandbox) == server_fds
    assert _starts(sandbox) == starts


def _starts(verifier) -> list[int]:
    return [server.starts for server in verifier.pool.servers]
