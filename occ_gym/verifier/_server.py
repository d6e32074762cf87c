"""The fork server inside bubblewrap: one candidate at a time, each in a locked-down child.

Not imported on the host. The host starts ``python -I -S -B _server.py`` inside bwrap with this
file and ``protocol.py`` mounted read-only, sends one configuration line, waits for
``{"ready": ...}``, then sends one request line per candidate and reads one response line.
Everything here is standard library so that nothing from the project's environment is visible.

A child, in order: new session; stdin from /dev/null, stdout and stderr to a size-capped file
in its private work dir, every other fd closed but the result pipe; rlimits; a non-root uid;
no-new-privs and parent-death signal; the seccomp filter the host compiled; then the candidate.
It writes JSON lines to the result pipe: the outcome of loading the code, one record per test
call (the *output*, never a verdict), and ``done``. The server enforces the wall-clock deadline
and kills the child's process group; it never interprets what the child wrote.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import gc
import importlib
import json
import math
import os
import resource
import select
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
WORK_DIR = "/tmp/work"
RESULT_FD = 3
REQUEST_LIMIT = 64 << 20


class SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


def main() -> None:
    stdin = os.fdopen(0, "rb", buffering=1 << 16)
    config = json.loads(stdin.readline())
    for name in sorted(protocol.ALLOWED_MODULES):
        importlib.import_module(name)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = (ctypes.c_int, *(ctypes.c_ulong,) * 4)  # resolved once, not per child
    libc.prctl.restype = ctypes.c_int
    bpf = bytes.fromhex(config["bpf"])
    program = SockFprog(len(bpf) // 8, bpf)
    gc.freeze()  # children then leave the preloaded objects' pages alone
    os.write(1, protocol.dumps({"ready": True, "pid": os.getpid()}))
    devnull = os.open("/dev/null", os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    while True:
        line = stdin.readline(REQUEST_LIMIT)
        if not line:
            return
        request = json.loads(line)
        os.write(1, protocol.dumps(serve(request, config, libc, program)))


def serve(request: dict, config: dict, libc: ctypes.CDLL, program: SockFprog) -> dict:
    """Run one candidate in a fresh child and report how it ended and what it wrote."""
    if os.path.exists(WORK_DIR):
        shutil.rmtree(WORK_DIR, ignore_errors=True)
    os.mkdir(WORK_DIR, 0o700)
    if config["uid"] is not None:
        os.chown(WORK_DIR, config["uid"], config["gid"])
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            gc.disable()
            try:
                enter_jail(write_end, request["timeout"], config, libc, program)
            except BaseException as error:  # a server bug, reported rather than hidden
                report = protocol.dumps({"jail": f"{type(error).__name__}: {error}"})
                for fd in (RESULT_FD, write_end):
                    try:
                        os.write(fd, report)
                        break
                    except OSError:
                        continue
                raise
            run_candidate(request)
        finally:
            os._exit(70)
    os.close(write_end)
    payload, timed_out, over_limit = collect(pid, read_end, started + request["timeout"], config)
    os.close(read_end)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    return {
        "id": request["id"],
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "timed_out": timed_out,
        "over_limit": over_limit,
        "wall_s": time.monotonic() - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,
        "payload": payload.decode("utf-8", "replace"),
    }


def collect(pid: int, read_end: int, deadline: float, config: dict) -> tuple[bytes, bool, bool]:
    """Read the child's result pipe until it exits, overruns the deadline or the size cap."""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(read_end, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    chunks: list[bytes] = []
    size, pipe_open, exited = 0, True, False
    try:
        while pipe_open:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"".join(chunks), True, False
            events = dict(poller.poll(remaining * 1000))
            if pidfd in events:
                exited = True  # drain what is left, then stop even if a thread kept the pipe
                poller.unregister(pidfd)
            if read_end in events:
                chunk = os.read(read_end, 1 << 16)
                if not chunk:
                    pipe_open = False
                size += len(chunk)
                if size > config["max_result_bytes"]:
                    return b"".join(chunks), False, True
                chunks.append(chunk)
            elif exited:
                pipe_open = False
    finally:
        os.close(pidfd)
    return b"".join(chunks), False, False


def enter_jail(
    result_fd: int, timeout_s: float, config: dict, libc: ctypes.CDLL, program: SockFprog
) -> None:
    """Lock this freshly forked child down, in the order the threat model needs."""
    os.setsid()
    stdin = os.open("/dev/null", os.O_RDONLY)
    output = os.open(f"{WORK_DIR}/output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(stdin, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.dup2(result_fd, RESULT_FD)
    os.closerange(RESULT_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    limits = config["limits"]
    cpu = max(int(limits["cpu_s"]), math.ceil(timeout_s) + 1)  # never cut a longer deadline
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.chdir(WORK_DIR)
    if config["uid"] is not None:  # a root host; otherwise bwrap's user namespace isolates
        os.setgroups([])
        os.setresgid(config["gid"], config["gid"], config["gid"])
        os.setresuid(config["uid"], config["uid"], config["uid"])
    parent = os.getppid()
    _prctl(libc, PR_SET_NO_NEW_PRIVS, 1)
    _prctl(libc, PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(71)
    _prctl(libc, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(program))
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; exceeding FSIZE must kill
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _prctl(libc: ctypes.CDLL, option: int, *args: int) -> None:
    if libc.prctl(option, *(*args, 0, 0, 0, 0)[:4]) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def run_candidate(request: dict) -> None:
    """Load the candidate, call it on each input, write each output; never judge anything."""
    write, dumps, encode, decode = (
        os.write,
        json.dumps,
        protocol.encode_value,
        protocol.decode_value,
    )

    def send(message: dict) -> None:
        write(RESULT_FD, (dumps(message, separators=(",", ":")) + "\n").encode())

    namespace = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        exec(compile(request["code"], "<candidate>", "exec"), namespace)
        entry = namespace.get(request["entry_point"])
        if not callable(entry):
            raise NameError(f"entry point {request['entry_point']!r} is not defined")
    except BaseException as error:  # the candidate may raise anything, SystemExit included
        send({"load": "error", "type": _type_name(error), "message": _message(error)})
        os._exit(0)
    send({"load": "ok"})
    for index, arguments in enumerate(request["inputs"]):
        try:
            output = entry(*decode(arguments))
        except BaseException as error:
            send({"i": index, "type": _type_name(error), "message": _message(error)})
            continue
        try:
            send({"i": index, "out": encode(output)})
        except BaseException as error:
            send({"i": index, "unsendable": _type_name(error), "message": _message(error)})
    if request.get("check") is not None:
        try:
            exec(compile(request["check"], "<check>", "exec"), namespace)
            namespace["check"](entry)
            send({"check": "ok"})
        except BaseException as error:
            send({"check": "error", "type": _type_name(error), "message": _message(error)})
    send({"done": len(request["inputs"])})
    os._exit(0)


def _type_name(error: BaseException) -> str:
    return str(type.__getattribute__(type(error), "__name__"))[:80]


def _message(error: BaseException) -> str:
    try:
        return str(error)[:300]
    except BaseException:
        return "<unprintable>"


if __name__ == "__main__":
    sys.exit(main())
